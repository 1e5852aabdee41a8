"""Gather every service's readiness report, and pick out the breakers and the outbox lag.

The gateway asks each service's ``/health/ready`` concurrently over a plain HTTP
client, never through the upstream clients: watching the platform must not
trip, or count against, the breakers it reports. The gateway's own report is
read from its registry in process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import FastAPI

from chassis.health import ReadinessRegistry
from gateway.status.schemas import BreakerStatus, OutboxStatus, PlatformStatus, ServiceStatus

READY_PATH = "/health/ready"
#: Keys every breaker snapshot has (`chassis.http.breaker.CircuitBreaker.snapshot`).
BREAKER_KEYS = frozenset({"state", "failures", "failure_threshold", "retry_in_seconds"})
OUTBOX_KEYS = frozenset({"backlog", "oldest_unsent_seconds"})


async def platform_status(
    *,
    app: FastAPI,
    registry: ReadinessRegistry,
    targets: Mapping[str, str],
    timeout_seconds: float,
) -> PlatformStatus:
    """The status of the gateway and of every service in `targets` (name -> base URL)."""
    started = time.perf_counter()
    ready, report = await registry.run(app)
    own = ServiceStatus(
        name="gateway",
        state="ready" if ready else "not_ready",
        http_status=200 if ready else 503,
        latency_ms=_ms_since(started),
        checks=report.get("checks", {}),
    )
    async with httpx.AsyncClient(timeout=timeout_seconds, trust_env=False) as client:
        others = await asyncio.gather(
            *(_service_status(client, name, url) for name, url in targets.items())
        )
    services = [own, *others]
    return PlatformStatus(
        services=services,
        breakers=[breaker for service in services for breaker in _breakers(service)],
        outbox=[outbox for service in services for outbox in _outboxes(service)],
    )


async def _service_status(client: httpx.AsyncClient, name: str, base_url: str) -> ServiceStatus:
    started = time.perf_counter()
    try:
        response = await client.get(base_url.rstrip("/") + READY_PATH)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # The exception type only: a message can carry hosts and ports.
        return ServiceStatus(
            name=name,
            state="unreachable",
            http_status=None,
            latency_ms=_ms_since(started),
            checks={},
            error=type(exc).__name__,
        )
    checks = body.get("checks") if isinstance(body, dict) else None
    return ServiceStatus(
        name=name,
        state="ready" if response.status_code == 200 else "not_ready",
        http_status=response.status_code,
        latency_ms=_ms_since(started),
        checks=checks if isinstance(checks, dict) else {},
    )


def _breakers(service: ServiceStatus) -> list[BreakerStatus]:
    """Breaker snapshots in a report: a check's details, or a check's details by upstream."""
    found: list[BreakerStatus] = []
    for check_name, check in service.checks.items():
        details = check.get("details")
        if not isinstance(details, dict):
            continue
        if details.keys() >= BREAKER_KEYS:
            found.append(_breaker(service.name, check_name, details))
            continue
        for upstream, snapshot in details.items():
            if isinstance(snapshot, dict) and snapshot.keys() >= BREAKER_KEYS:
                found.append(_breaker(service.name, upstream, snapshot))
    return found


def _breaker(service: str, upstream: str, snapshot: Mapping[str, Any]) -> BreakerStatus:
    return BreakerStatus(
        service=service,
        upstream=upstream,
        state=snapshot["state"],
        failures=snapshot["failures"],
        retry_in_seconds=snapshot["retry_in_seconds"],
    )


def _outboxes(service: ServiceStatus) -> list[OutboxStatus]:
    found = []
    for check in service.checks.values():
        details = check.get("details")
        if isinstance(details, dict) and details.keys() >= OUTBOX_KEYS:
            found.append(
                OutboxStatus(
                    service=service.name,
                    backlog=details["backlog"],
                    oldest_unsent_seconds=details["oldest_unsent_seconds"],
                )
            )
    return found


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
