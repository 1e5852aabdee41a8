"""The HTTP client's Prometheus counters, read by the client tests."""

from __future__ import annotations

from prometheus_client import REGISTRY


def retries(upstream: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_client_retries_total", {"upstream": upstream, "reason": reason}
    )
    return value or 0.0


def requests_counted(upstream: str, method: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_client_requests_total", {"upstream": upstream, "method": method, "outcome": outcome}
    )
    return value or 0.0
