"""The platform status as the console shows it: per service, its readiness checks as reported."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class BreakerStatus(BaseModel):
    """One circuit breaker, as the service that holds it reported it."""

    service: str = Field(description="The service holding the breaker.")
    upstream: str = Field(description="What the breaker guards.")
    state: Literal["closed", "open", "half_open"]
    failures: int
    retry_in_seconds: float


class OutboxStatus(BaseModel):
    """Unsent outbox rows and the age of the oldest (0 when nothing waits)."""

    service: str
    backlog: int
    oldest_unsent_seconds: float


class ServiceStatus(BaseModel):
    """One service's readiness: `unreachable` when it did not answer in time."""

    name: str
    state: Literal["ready", "not_ready", "unreachable"]
    http_status: int | None = Field(description="Status of its /health/ready; null if no answer.")
    latency_ms: float = Field(description="How long the readiness answer took.")
    checks: dict[str, dict[str, Any]] = Field(
        description="Its readiness checks by name: status, latency, details."
    )
    error: str | None = Field(default=None, description="Why it is unreachable.")


class PlatformStatus(BaseModel):
    """What the console's health page shows, gathered by the gateway in one call."""

    services: list[ServiceStatus]
    breakers: list[BreakerStatus]
    outbox: list[OutboxStatus]
