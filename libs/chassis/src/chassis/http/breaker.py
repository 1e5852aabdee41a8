"""A circuit breaker: stop calling an upstream that keeps failing, probe it, recover.

Semantics (ADR 0004):

- CLOSED: calls go through. Each failure adds to a count of *consecutive*
  failures; a success resets it. When the count reaches `failure_threshold`
  the breaker opens.
- OPEN: calls are refused at once with `CircuitOpenError` (carrying the
  seconds until a probe is allowed); nothing touches the network.
- HALF_OPEN: once `open_seconds` have passed, the next call is let through
  as a probe, and at most `half_open_max_calls` probes run at the same time
  (other calls are refused). A probe success closes the breaker; a probe
  failure opens it again and restarts the timer.

What counts as a failure is the caller's choice: inside `guard()`, an
exception for which `is_failure` is true, or an explicit `call.record_failure()`
(the HTTP client marks 500/502/503/504 answers this way; 4xx are the
caller's mistake, not the upstream's sickness, and count as success).
Outcomes of calls that started before the last state change are ignored, so a
slow call from before an opening cannot close the breaker again. In CLOSED, a
failure of a call during which another call succeeded is not counted either:
the upstream answered while it ran, so the failure says it was slow or queued,
not sick. Without this, requests that queued together behind an overload time
out together, and a handful of simultaneous timeouts opened the breaker for
`open_seconds` while the upstream was already serving again (issue 15).

State is per process and per breaker; each transition updates the
``circuit_breaker_state`` gauge (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from types import TracebackType
from typing import Any

import structlog

from chassis.http.errors import CircuitOpenError
from chassis.metrics.registry import BREAKER_REJECTIONS, BREAKER_STATE, BREAKER_TRANSITIONS

logger = structlog.get_logger("chassis.http.breaker")


class BreakerState(Enum):
    """Breaker states; the value is what the ``circuit_breaker_state`` gauge reads."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


def _any_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class BreakerCall:
    """One admitted call: ``async with breaker.guard() as call``.

    Leaving the block normally records a success unless `record_failure` was
    called; leaving it with an exception records a failure when the breaker's
    `is_failure` says so, and nothing otherwise (cancellation, our own bugs).
    """

    __slots__ = ("_breaker", "_generation", "_is_failure", "_outcome", "_probe", "_successes")

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        is_failure: Callable[[BaseException], bool],
    ) -> None:
        self._breaker = breaker
        self._is_failure = is_failure
        self._generation = -1
        self._probe = False
        self._successes = 0
        self._outcome: bool | None = None

    def record_failure(self) -> None:
        """Count this call as a failure even though it returned (a 503 answer)."""
        self._outcome = False

    def record_success(self) -> None:
        """Count this call as a success even if it then raises."""
        self._outcome = True

    async def __aenter__(self) -> BreakerCall:
        self._generation, self._probe = self._breaker._admit()
        self._successes = self._breaker._successes
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        outcome = self._outcome
        if outcome is None:
            outcome = True if exc is None else (False if self._is_failure(exc) else None)
        self._breaker._finish(
            self._generation, probe=self._probe, success=outcome, successes_at_start=self._successes
        )


class CircuitBreaker:
    """Closed / open / half-open breaker for one upstream (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        open_seconds: float,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or open_seconds <= 0:
            raise ValueError(
                "failure_threshold and half_open_max_calls must be >= 1, open_seconds > 0"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at: float | None = None
        self._probes = 0
        #: Successes so far; a call that sees it move ran while the upstream answered.
        self._successes = 0
        # Bumped on every transition: outcomes from an older generation are stale.
        self._generation = 0
        BREAKER_STATE.labels(upstream=name).set(BreakerState.CLOSED.value)

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN turns HALF_OPEN on the first call after `open_seconds`."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far (in CLOSED), or that opened the breaker."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe is allowed; 0 when calls (or probes) may go now."""
        if self._state is not BreakerState.OPEN or self._opened_at is None:
            return 0.0
        return max(self.open_seconds - (self._clock() - self._opened_at), 0.0)

    def guard(self, *, is_failure: Callable[[BaseException], bool] = _any_exception) -> BreakerCall:
        """Admit one call or raise `CircuitOpenError`; record its outcome on exit."""
        return BreakerCall(self, is_failure=is_failure)

    def snapshot(self) -> dict[str, Any]:
        """What readiness shows: state, failure count, how long open, when it probes."""
        opened_ago = None if self._opened_at is None else self._clock() - self._opened_at
        return {
            "state": self._state.name.lower(),
            "failures": self._failures,
            "failure_threshold": self.failure_threshold,
            "opened_seconds_ago": None if opened_ago is None else round(opened_ago, 3),
            "retry_in_seconds": round(self.retry_in(), 3),
        }

    # --- internals used by BreakerCall ---------------------------------------------
    def _admit(self) -> tuple[int, bool]:
        if self._state is BreakerState.OPEN:
            retry_in = self.retry_in()
            if retry_in > 0:
                self._reject(retry_in)
            self._transition(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._probes >= self.half_open_max_calls:
                self._reject(0.0)
            self._probes += 1
            return self._generation, True
        return self._generation, False

    def _reject(self, retry_in: float) -> None:
        BREAKER_REJECTIONS.labels(upstream=self.name).inc()
        raise CircuitOpenError(self.name, retry_in=retry_in)

    def _finish(
        self, generation: int, *, probe: bool, success: bool | None, successes_at_start: int
    ) -> None:
        if generation != self._generation:
            return
        if probe:
            self._probes -= 1
        if success is None:
            return
        if success:
            self._successes += 1
            if self._state is BreakerState.HALF_OPEN:
                self._transition(BreakerState.CLOSED)
            self._failures = 0
            return
        if self._state is BreakerState.CLOSED and self._successes != successes_at_start:
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._transition(BreakerState.OPEN)

    def _transition(self, state: BreakerState) -> None:
        previous = self._state
        self._state = state
        self._generation += 1
        self._probes = 0
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        elif state is BreakerState.CLOSED:
            self._opened_at = None
            self._failures = 0
        BREAKER_STATE.labels(upstream=self.name).set(state.value)
        BREAKER_TRANSITIONS.labels(upstream=self.name, state=state.name.lower()).inc()
        log = logger.warning if state is BreakerState.OPEN else logger.info
        log(
            "circuit_breaker_transition",
            upstream=self.name,
            previous=previous.name.lower(),
            state=state.name.lower(),
            failures=self._failures,
        )
