"""Resilient HTTP clients for calling upstream services: timeouts, retries, breaker."""

from chassis.http.breaker import BreakerCall, BreakerState, CircuitBreaker
from chassis.http.client import BREAKER_FAILURE_STATUSES, UpstreamClient
from chassis.http.errors import (
    CircuitOpenError,
    DeadlineExceeded,
    UpstreamBadGateway,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chassis.http.retry import (
    IDEMPOTENT_METHODS,
    RETRY_STATUSES,
    RetryPolicy,
    is_idempotent,
)
from chassis.http.setup import (
    UpstreamClients,
    get_upstream,
    setup_http_clients,
    upstream,
    upstreams_report,
)

__all__ = [
    "BREAKER_FAILURE_STATUSES",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "BreakerCall",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "DeadlineExceeded",
    "RetryPolicy",
    "UpstreamBadGateway",
    "UpstreamClient",
    "UpstreamClients",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "get_upstream",
    "is_idempotent",
    "setup_http_clients",
    "upstream",
    "upstreams_report",
]
