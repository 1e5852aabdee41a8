"""The worker's settings (env prefix ``WORKER_``): upstreams, service credentials, jobs, crons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import (
    BaseServiceSettings,
    ProductionSecret,
    ServerSettings,
    SettingsGetter,
    UpstreamSettings,
)

#: Where the upstreams are when nothing says otherwise (the ports of the contract).
DEFAULT_UPSTREAM_URLS: Mapping[str, str] = {
    "orders": "http://127.0.0.1:8002",
    "users": "http://127.0.0.1:8001",
}

HEALTH_PORT = 8003

#: users' development default for the ``worker`` client, so that both run out of the box;
#: production refuses it on both sides.
DEVELOPMENT_CLIENT_SECRET = "worker-development-secret"  # noqa: S105 - refused in production


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class JobsSettings(_Group):
    queue_name: str = "arq:queue"
    """Arq queue the worker takes jobs from (the one orders enqueues onto)."""
    max_jobs: int = Field(default=10, ge=1)
    """Jobs run at the same time by one worker process."""
    poll_delay_seconds: float = Field(default=0.05, gt=0)
    """Pause between arq's reads of the queue. Each read starts at most `max_jobs` jobs, so
    one process runs at most `max_jobs / poll_delay_seconds` jobs a second however short they
    are: arq's default 0.5 s capped it at 20/s, below the rate orders takes writes at."""
    queue_depth_interval_seconds: float = Field(default=15.0, gt=0)
    """How often the queue-depth gauge is sampled between scrapes."""
    redis_outage_seconds: float = Field(default=0.0, ge=0)
    """How long the worker waits out a Redis that refuses, cuts or stops answering (each
    command tried again with backoff) before it exits for its supervisor to restart; 0 waits
    as long as the outage lasts. Readiness reports Redis down meanwhile. A SIGTERM during the
    outage stops taking jobs, but the exit waits for Redis too (arq's close() clears its
    health key first): within this time, or until the supervisor's kill."""


class FulfilSettings(_Group):
    latency_seconds: float = Field(default=0.05, ge=0)
    """Simulated payment/stock latency of one fulfilment."""
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    """Share of simulated payments that are declined (the order ends `failed`)."""
    max_tries: int = Field(default=8, ge=1)
    """Attempts of one fulfilment job before it gives up on a sick upstream."""
    retry_backoff_initial_seconds: float = Field(default=1.0, ge=0)
    """Wait before the second attempt; doubles per attempt, with jitter."""
    retry_backoff_max_seconds: float = Field(default=60.0, ge=0)
    """Longest wait between attempts (an open breaker may ask for longer)."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Deadline of one attempt, a backstop: an attempt past it fails the job for good (each
    upstream call has its own, shorter deadline)."""


class CronSettings(_Group):
    enabled: bool = True
    """Run the maintenance crons (several replicas may; arq runs each tick once)."""
    pending_ttl_seconds: float = Field(default=900.0, gt=0)
    """Pending orders older than this are expired (failed, reason `expired`) every minute."""
    idempotency_ttl_seconds: float = Field(default=86_400.0, gt=0)
    """Idempotency keys older than this are purged hourly."""
    outbox_sent_ttl_seconds: float = Field(default=604_800.0, gt=0)
    """Sent outbox rows older than this are purged hourly."""
    purge_minute: int = Field(default=0, ge=0, le=59)
    """Minute of the hour at which the purge runs."""


def _default_upstreams() -> dict[str, UpstreamSettings]:
    return {name: UpstreamSettings(base_url=url) for name, url in DEFAULT_UPSTREAM_URLS.items()}


class WorkerSettings(BaseServiceSettings):
    """Settings of the worker process; every field reads ``WORKER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="WORKER_")

    service_name: str = "worker"
    """Name in logs, metrics and traces."""
    server: ServerSettings = Field(default_factory=lambda: ServerSettings(port=HEALTH_PORT))
    """Where the health and metrics server listens (`WORKER_SERVER__PORT`, default 8003)."""
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=_default_upstreams)
    """`orders` and `users` (`WORKER_UPSTREAMS__ORDERS__BASE_URL`, default
    http://127.0.0.1:8002; `..__USERS__..` http://127.0.0.1:8001); other fields of a group
    may be set alone."""
    client_id: str = "worker"
    """Service account the worker authenticates as (client-credentials grant at users)."""
    client_secret: ProductionSecret = SecretStr(DEVELOPMENT_CLIENT_SECRET)
    """Secret of that service account; the development default is refused in production."""
    token_refresh_margin_seconds: float = Field(default=30.0, ge=0)
    """A cached service token is replaced this long before it expires."""
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    """Queue and concurrency."""
    fulfil: FulfilSettings = Field(default_factory=FulfilSettings)
    """The `orders.fulfil` job."""
    crons: CronSettings = Field(default_factory=CronSettings)
    """The maintenance crons."""

    @field_validator("server", mode="before")
    @classmethod
    def _health_port_by_default(cls, value: Any) -> Any:
        # `WORKER_SERVER__HOST` alone must not move the port back to the chassis default.
        if isinstance(value, Mapping) and "port" not in value:
            return {"port": HEALTH_PORT, **value}
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _fill_default_upstreams(cls, value: Any) -> Any:
        # An env var for one field of an upstream replaces the whole mapping: put the
        # defaults back so `WORKER_UPSTREAMS__ORDERS__RETRY_ATTEMPTS=5` alone still works.
        if not isinstance(value, Mapping):
            return value
        merged = dict(value)
        for name, url in DEFAULT_UPSTREAM_URLS.items():
            given = merged.get(name)
            if given is None:
                merged[name] = {"base_url": url}
            elif isinstance(given, Mapping) and "base_url" not in given:
                merged[name] = {"base_url": url, **given}
        return merged

    @model_validator(mode="after")
    def _no_development_secret_in_production(self) -> WorkerSettings:
        secret = self.client_secret
        if (
            self.is_production
            and secret is not None
            and secret.get_secret_value() == DEVELOPMENT_CLIENT_SECRET
        ):
            raise ValueError(
                "refusing to start in production: client_secret is the development default"
            )
        return self


get_settings = SettingsGetter(WorkerSettings)
"""The process's settings, read once from the environment (``cache_clear()`` in tests)."""
