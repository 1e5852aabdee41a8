"""`UpstreamClient`: one pooled httpx client per upstream, with deadline, retries and breaker.

A call runs in this order: the deadline starts; the retry loop runs
attempts; each attempt passes the breaker (an open breaker fails fast and is
not retried), carries ``X-Request-ID`` and ``traceparent``, and is measured.
Answers that are not retried come back as responses, whatever their status;
transport failures come out as chassis problems (503, 504, 502) naming the
upstream, never its host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from types import TracebackType
from typing import Any, Self

import httpx

from chassis.context import get_request_id
from chassis.http.breaker import CircuitBreaker
from chassis.http.client_span import end_with_error, end_with_status, start_client_span
from chassis.http.errors import (
    CircuitOpenError,
    DeadlineExceeded,
    UpstreamTimeout,
    as_service_error,
    error_kind,
    is_upstream_failure,
)
from chassis.http.retry import RetryPolicy, Sleep, can_replay, is_idempotent
from chassis.metrics.registry import UPSTREAM_REQUEST_DURATION, UPSTREAM_REQUESTS
from chassis.overload import DEADLINE_HEADER, SHED_HEADER, format_deadline
from chassis.settings import UpstreamSettings
from chassis.tracing.propagation import inject_trace_context

#: Answers that say the upstream itself is sick; 4xx say the request was wrong.
BREAKER_FAILURE_STATUSES = frozenset({500, 502, 503, 504})

_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE"})

#: Distinct request targets whose absolute URL one client keeps parsed.
URL_CACHE_SIZE = 1024


class UpstreamClient:
    """Calls one upstream service; see the module docstring for the order of concerns."""

    def __init__(
        self,
        name: str,
        settings: UpstreamSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self.breaker = CircuitBreaker(
            name,
            failure_threshold=settings.breaker_failure_threshold,
            open_seconds=settings.breaker_open_seconds,
            half_open_max_calls=settings.breaker_half_open_max_calls,
            clock=clock,
        )
        self.retry = RetryPolicy.from_settings(name, settings, sleep=sleep)
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
            keepalive_expiry=settings.keepalive_expiry_seconds,
        )
        own_aiohttp = transport is None and settings.transport == "aiohttp"
        if own_aiohttp:
            transport = _aiohttp_transport(limits)
        self._client = _CookielessClient(
            base_url=settings.base_url,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_seconds,
                read=settings.read_timeout_seconds,
                write=settings.write_timeout_seconds,
                pool=settings.pool_timeout_seconds,
            ),
            limits=limits,
            transport=transport,
            # Service-to-service calls must not follow a developer's HTTP_PROXY or .netrc.
            trust_env=False,
        )
        # httpx parses the target and re-parses it joined to the base URL on every call
        # (about half of `build_request`); the joined URL is immutable, so it is parsed
        # once per target. `_merge_url` is httpx's own join, so the URL is the same.
        self._absolute_url = lru_cache(maxsize=URL_CACHE_SIZE)(self._client._merge_url)
        # The stock httpx instrumentation patches httpx's own transport only; calls over
        # aiohttp get the chassis' cheaper span (chassis.http.client_span).
        self._own_spans = own_aiohttp

    # --- calls ---------------------------------------------------------------------
    async def request(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request and read the answer; `idempotent=True` lets a POST be retried.

        `kwargs` are those of ``httpx.AsyncClient.build_request`` (params, headers,
        json, content, timeout ...). Raises `UpstreamUnavailable`, `UpstreamTimeout`
        or `UpstreamBadGateway`; any HTTP status is returned, not raised.
        """
        request = self._build_request(method, url, kwargs)
        return await self._send(request, idempotent=idempotent, stream=False)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the answer with its body unread, for proxying.

        The deadline, retries and breaker cover the call up to the response
        head; reading the body is bounded by the read timeout only. A request
        whose body is an async iterator is never retried (it cannot be replayed).
        """
        request = self._build_request(method, url, kwargs)
        response = await self._send(request, idempotent=idempotent, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(
        self, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.request("POST", url, idempotent=idempotent, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(
        self, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.request("PATCH", url, idempotent=idempotent, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- internals -------------------------------------------------------------------
    def _build_request(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Request:
        request = self._client.build_request(method, self._absolute_url(url), **kwargs)
        request_id = get_request_id()
        if request_id and "x-request-id" not in request.headers:
            request.headers["X-Request-ID"] = request_id
        request.headers.update(inject_trace_context())
        return request

    async def _send(
        self, request: httpx.Request, *, idempotent: bool | None, stream: bool
    ) -> httpx.Response:
        deadline_at = asyncio.get_running_loop().time() + self.settings.deadline_seconds
        # The upstream stops working on the call when this process stops waiting for it.
        request.headers[DEADLINE_HEADER] = format_deadline(self.settings.deadline_seconds)
        retriable = is_idempotent(request.method, idempotent) and can_replay(request)

        async def attempt() -> httpx.Response:
            return await self._attempt(request, stream=stream, deadline_at=deadline_at)

        try:
            return await self.retry.run(attempt, retriable=retriable, deadline_at=deadline_at)
        except DeadlineExceeded as exc:
            raise UpstreamTimeout(
                self.name,
                f"Upstream {self.name!r} did not answer within "
                f"{self.settings.deadline_seconds:g}s.",
            ) from exc
        except httpx.TransportError as exc:
            raise as_service_error(self.name, exc) from exc

    async def _attempt(
        self, request: httpx.Request, *, stream: bool, deadline_at: float
    ) -> httpx.Response:
        method = request.method if request.method in _METHODS else "OTHER"
        try:
            async with self.breaker.guard(is_failure=is_upstream_failure) as call:
                span = start_client_span(self.name, request) if self._own_spans else None
                started = time.perf_counter()
                try:
                    # The deadline ends an attempt as a timeout (the breaker counts it),
                    # not as a cancellation, which would be nobody's fault.
                    async with asyncio.timeout_at(deadline_at):
                        response = await self._client.send(request, stream=stream)
                except TimeoutError as exc:
                    self._observe(method, "deadline", started)
                    error = DeadlineExceeded("call deadline exceeded", request=request)
                    if span is not None:
                        end_with_error(span, error)
                    raise error from exc
                except BaseException as exc:
                    self._observe(method, error_kind(exc), started)
                    if span is not None:
                        end_with_error(span, exc)
                    raise
                self._observe(method, str(response.status_code), started)
                if span is not None:
                    end_with_status(span, response.status_code)
                if response.status_code in BREAKER_FAILURE_STATUSES and not _shed(response):
                    call.record_failure()
                return response
        except CircuitOpenError:
            UPSTREAM_REQUESTS.labels(
                upstream=self.name, method=method, outcome="circuit_open"
            ).inc()
            raise

    def _observe(self, method: str, outcome: str, started: float) -> None:
        UPSTREAM_REQUESTS.labels(upstream=self.name, method=method, outcome=outcome).inc()
        UPSTREAM_REQUEST_DURATION.labels(upstream=self.name, method=method).observe(
            time.perf_counter() - started
        )


def _shed(response: httpx.Response) -> bool:
    """A healthy upstream's refusal at its concurrency limit: fast, so no reason to open."""
    return SHED_HEADER in response.headers


class _NoCookies(httpx.Cookies):
    """A jar that is always empty and never reads ``Set-Cookie``."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that keeps no cookies between calls.

    One client serves every caller of an upstream. httpx's default jar would
    store a ``Set-Cookie`` from an answer to one user's request and send it
    on every later request to that upstream, whoever made it; a gateway
    would leak sessions across users. Without a jar, httpx also skips parsing
    each answer's headers into an ``email.message`` for cookies (about a tenth
    of the gateway's cost of a proxied call). Cookies a caller passes on a
    request still go out with that request; answers' ``Set-Cookie`` headers still
    reach the caller.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        # httpx.AsyncClient.__init__ assigns the jar; there is none to keep.
        return None


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """httpx over aiohttp's connection pool (``transport = "aiohttp"``, docs/adr/0011)."""
    from chassis.http.aiohttp_transport import ChassisAiohttpTransport

    return ChassisAiohttpTransport(limits=limits)
