"""The retry policy for upstream calls: what is retried, how long to wait, when to stop.

Only requests that are safe to send twice are retried: idempotent methods
(GET, HEAD, OPTIONS, PUT, DELETE), or a POST the caller marks idempotent
because it carries an ``Idempotency-Key``; and only with a body that can be
sent again. Only failures that say "try again" are retried: connect errors,
connect/read/pool timeouts, a connection dropped without an answer, and
502/503/504 answers. Waits are full-jitter exponential (uniform between 0 and
``min(max, initial * 2**(n-1))``) so that replicas do not retry in step; a
503's ``Retry-After`` is honoured instead when it fits the deadline. Retrying
stops after `attempts`, or as soon as the next wait would end past the
call's deadline; the last answer (or error) is then what the caller gets.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from tenacity import RetryCallState
from tenacity.asyncio import AsyncRetrying
from tenacity.wait import wait_random_exponential

from chassis.http.errors import DeadlineExceeded, error_kind
from chassis.metrics.registry import UPSTREAM_RETRIES
from chassis.settings import UpstreamSettings

logger = structlog.get_logger("chassis.http.retry")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.PoolTimeout,
    # Raised when a kept-alive connection was closed by the upstream before it
    # answered; safe to resend because only idempotent requests get here.
    httpx.RemoteProtocolError,
)

Sleep = Callable[[float], Awaitable[Any]]
Attempt = Callable[[], Awaitable[httpx.Response]]


def is_idempotent(method: str, idempotent: bool | None = None) -> bool:
    """Whether a request may be sent twice; `idempotent` overrides the method's default."""
    if idempotent is not None:
        return idempotent
    return method.upper() in IDEMPOTENT_METHODS


def can_replay(request: httpx.Request) -> bool:
    """Whether the body is held in memory (a streamed body can only be sent once)."""
    return isinstance(request.stream, httpx.ByteStream)


def retry_reason(outcome: httpx.Response | BaseException) -> str | None:
    """Why this outcome is worth another attempt (the metric label), or None."""
    if isinstance(outcome, httpx.Response):
        if outcome.status_code in RETRY_STATUSES:
            return f"status_{outcome.status_code}"
        return None
    if isinstance(outcome, DeadlineExceeded) or not isinstance(outcome, RETRY_EXCEPTIONS):
        return None
    return error_kind(outcome)


def retry_after_seconds(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """The wait a 503 asks for via ``Retry-After`` (seconds or HTTP date), if any."""
    if response.status_code != 503:
        return None
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class RetryPolicy:
    """Retries one upstream call with tenacity under a deadline; see the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        attempts: int,
        backoff_initial: float,
        backoff_max: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.upstream = upstream
        self.attempts = max(attempts, 1)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._jitter = wait_random_exponential(multiplier=backoff_initial, max=backoff_max)
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, upstream: str, settings: UpstreamSettings, *, sleep: Sleep = asyncio.sleep
    ) -> RetryPolicy:
        return cls(
            upstream,
            attempts=settings.retry_attempts,
            backoff_initial=settings.retry_backoff_initial_seconds,
            backoff_max=settings.retry_backoff_max_seconds,
            sleep=sleep,
        )

    def backoff_bound(self, retry_number: int) -> float:
        """The largest wait before retry number `retry_number` (1 = the first retry)."""
        return min(self.backoff_max, self.backoff_initial * 2.0 ** (retry_number - 1))

    async def run(self, attempt: Attempt, *, retriable: bool, deadline_at: float) -> httpx.Response:
        """Call `attempt` until it gives an answer worth returning, within the deadline.

        `deadline_at` is on the event loop's clock (``loop.time()``).
        """
        if not retriable or self.attempts == 1:
            return await attempt()
        # The first attempt runs bare: nearly every call ends with it, and tenacity's
        # per-call state (about a twentieth of the gateway's cost of a proxied call)
        # is built only once an outcome asks for another attempt.
        try:
            response = await attempt()
        except Exception as exc:
            if retry_reason(exc) is None:
                raise
            first: httpx.Response | BaseException = exc
        else:
            if retry_reason(response) is None:
                return response
            first = response
        return await self._retry(_replaying(first, attempt), deadline_at=deadline_at)

    async def _retry(self, attempt: Attempt, *, deadline_at: float) -> httpx.Response:
        loop = asyncio.get_running_loop()

        def should_retry(state: RetryCallState) -> bool:
            return retry_reason(_outcome(state)) is not None

        def wait(state: RetryCallState) -> float:
            outcome = _outcome(state)
            if isinstance(outcome, httpx.Response):
                asked = retry_after_seconds(outcome)
                if asked is not None:
                    return asked
            jittered: float = self._jitter(state)
            return jittered

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.attempts:
                return True
            return loop.time() + state.upcoming_sleep >= deadline_at

        async def before_sleep(state: RetryCallState) -> None:
            outcome = _outcome(state)
            reason = retry_reason(outcome) or "unknown"
            UPSTREAM_RETRIES.labels(upstream=self.upstream, reason=reason).inc()
            logger.info(
                "upstream_retry",
                upstream=self.upstream,
                reason=reason,
                attempt=state.attempt_number,
                wait_seconds=round(state.upcoming_sleep, 4),
            )
            if isinstance(outcome, httpx.Response):
                await outcome.aclose()

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=should_retry,
            before_sleep=before_sleep,
            retry_error_callback=_last_outcome,
        )
        response: httpx.Response = await retrying(attempt)
        return response


def _replaying(first: httpx.Response | BaseException, attempt: Attempt) -> Attempt:
    """`attempt`, whose first call gives back the outcome the bare first attempt had."""
    pending = [first]

    async def replay_then_attempt() -> httpx.Response:
        if pending:
            outcome = pending.pop()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return await attempt()

    return replay_then_attempt


def _outcome(state: RetryCallState) -> httpx.Response | BaseException:
    future = state.outcome
    if future is None:  # pragma: no cover - tenacity always sets it before deciding
        raise RuntimeError("retry decision without an outcome")
    if future.failed:
        exc = future.exception()
        if exc is None:  # pragma: no cover - a failed future carries its exception
            raise RuntimeError("failed attempt without an exception")
        return exc
    result: httpx.Response = future.result()
    return result


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """When retrying stops, hand back the last answer or raise the last error."""
    outcome = _outcome(state)
    if isinstance(outcome, httpx.Response):
        return outcome
    raise outcome
