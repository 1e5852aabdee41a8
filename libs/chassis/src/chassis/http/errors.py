"""Errors an upstream call surfaces, as chassis problems a route can let through.

Details name the upstream (a configured name such as ``orders``), never its
host or URL: those are internal topology and stay in the logs.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from chassis.errors import BadGateway, GatewayTimeout, ServiceError, ServiceUnavailable


class UpstreamUnavailable(ServiceUnavailable):
    """503: the upstream refused connections, or its breaker is open."""

    def __init__(self, upstream: str, detail: str | None = None, **kwargs: Any) -> None:
        self.upstream = upstream
        super().__init__(detail or f"Upstream {upstream!r} is unavailable; retry later.", **kwargs)


class CircuitOpenError(UpstreamUnavailable):
    """503 without a network call: the breaker for `upstream` is not letting calls through.

    `retry_in` is the number of seconds until the breaker lets a probe through
    (0 when it is half-open and its probe slots are taken).
    """

    def __init__(self, upstream: str, *, retry_in: float) -> None:
        self.retry_in = max(retry_in, 0.0)
        super().__init__(
            upstream,
            f"Upstream {upstream!r} is unavailable (circuit open); retry later.",
            headers={"Retry-After": str(max(math.ceil(self.retry_in), 1))},
        )


class UpstreamTimeout(GatewayTimeout):
    """504: the upstream did not answer within its timeouts or the call's deadline."""

    def __init__(self, upstream: str, detail: str | None = None, **kwargs: Any) -> None:
        self.upstream = upstream
        super().__init__(detail or f"Upstream {upstream!r} did not answer in time.", **kwargs)


class UpstreamBadGateway(BadGateway):
    """502: the connection broke or the upstream spoke invalid HTTP."""

    def __init__(self, upstream: str, detail: str | None = None, **kwargs: Any) -> None:
        self.upstream = upstream
        super().__init__(detail or f"Upstream {upstream!r} sent an invalid answer.", **kwargs)


class DeadlineExceeded(httpx.TimeoutException):
    """The call's overall deadline ran out during an attempt (counts as a timeout)."""


# Most specific first: DeadlineExceeded is a TimeoutException, ConnectTimeout is not a ConnectError.
_ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (CircuitOpenError, "circuit_open"),
    (DeadlineExceeded, "deadline"),
    (httpx.TimeoutException, "timeout"),
    (httpx.ConnectError, "connect_error"),
    (httpx.RemoteProtocolError, "protocol_error"),
    (httpx.NetworkError, "network_error"),
    (httpx.TransportError, "transport_error"),
    (Exception, "error"),
)


def error_kind(exc: BaseException) -> str:
    """A bounded label for what went wrong in one attempt (metrics and retry reasons)."""
    for kind_type, kind in _ERROR_KINDS:
        if isinstance(exc, kind_type):
            return kind
    return "cancelled"


def is_upstream_failure(exc: BaseException) -> bool:
    """Whether an exception says the upstream is unhealthy (what a breaker counts).

    Timeouts, refused or broken connections and protocol garbage count; our own
    bugs (an invalid URL) and cancellation (our caller went away) do not.
    """
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def as_service_error(upstream: str, exc: httpx.TransportError) -> ServiceError:
    """Map a transport failure that survived retries onto the problem a client should see."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(upstream)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(upstream)
    return UpstreamBadGateway(upstream)
