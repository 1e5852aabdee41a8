"""Settings of the orders service: the chassis groups with orders' defaults, plus its own.

Read from ``ORDERS_*`` variables (``__`` nests: ``ORDERS_OUTBOX__RELAY_ENABLED=false``).
Groups whose defaults differ from the chassis (server port, auth) are subclasses of
the chassis groups, so that setting one field from the environment keeps the
orders defaults of the others.
"""

from __future__ import annotations

from typing import Literal

from arq.constants import default_queue_name
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    RateLimitSettings,
    ServerSettings,
    SettingsGetter,
    app_settings_dependency,
)


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class OrdersServerSettings(ServerSettings):
    port: int = Field(default=8002, ge=1, le=65535)
    """Port the server listens on."""


class OrdersRateLimitSettings(RateLimitSettings):
    """The chassis limits, with orders' internal routes exempt.

    ``/internal/`` takes only service tokens with ``orders:internal``, is never
    routed by the gateway and is reachable only from the gateway's and the
    worker's pods (the chart's NetworkPolicy). The worker makes three calls
    there per order, bounded by its own job concurrency: the per-caller budget
    meant for users (100 a minute) stalled fulfilment at about one order every
    two seconds.
    """

    exempt_paths: list[str] = Field(default_factory=lambda: ["/health/", "/metrics", "/internal/"])
    """Path prefixes never limited (the chassis' plus the worker's `/internal/`)."""


class OrdersAuthSettings(AuthSettings):
    enabled: bool = True
    """Verify bearer tokens (needs jwks_url, issuer, audience)."""
    jwks_url: str | None = "http://127.0.0.1:8001/.well-known/jwks.json"
    """Where the users service publishes its keys."""
    issuer: str | None = "chassis-users"
    """Expected `iss` claim (the users service's token issuer)."""
    audience: str | None = "chassis-api"
    """Expected `aud` claim, shared by every service of the platform."""
    algorithms: list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]] = Field(
        default_factory=lambda: ["RS256"]  # type: ignore[arg-type]
    )
    """Accepted signature algorithms; the users service signs with RS256."""


class OutboxSettings(_Group):
    relay_enabled: bool = True
    """Run the outbox relay in this process (publish events, enqueue fulfilment jobs)."""
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Outbox rows claimed and published per relay pass."""
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    """Pause between relay passes when the last one did not fill a batch (and nothing woke it)."""
    wake_on_commit: bool = True
    """Start a relay pass as soon as an order's transaction commits in this process, instead of
    waiting for the poll; the poll still picks up rows of other processes and retries."""
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    """Longest wait before retrying a row whose publish failed."""
    stop_grace_seconds: float = Field(default=10.0, ge=0)
    """At shutdown, how long the relay may take to finish the batch in flight."""
    channel_prefix: str = Field(default="events", min_length=1)
    """Prefix of the pub/sub channels (`events.order.created`)."""
    replay_max_len: int = Field(default=10_000, ge=0)
    """Events also kept in the replay stream `<channel_prefix>:replay` (about this many,
    newest) for subscribers catching up after an outage; 0 keeps none."""


class JobsSettings(_Group):
    queue_name: str = Field(default=default_queue_name, min_length=1)
    """Arq queue the fulfilment job is enqueued on (the worker's queue)."""


class MaintenanceSettings(_Group):
    expire_batch_size: int = Field(default=1000, ge=1, le=100_000)
    """Most pending orders one expire-pending call moves to failed (the cron calls again)."""


class OrdersSettings(BaseServiceSettings):
    """Everything the orders service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: str = "orders"
    """Name in logs, metrics, traces and the default SQLite file."""
    server: OrdersServerSettings = Field(default_factory=OrdersServerSettings)
    """Server, deadline and body-size settings (port 8002)."""
    auth: OrdersAuthSettings = Field(default_factory=OrdersAuthSettings)
    """JWT verification of the users service's tokens."""
    rate_limit: OrdersRateLimitSettings = Field(default_factory=OrdersRateLimitSettings)
    """Rate limits per caller; the internal routes the worker calls are exempt."""
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    """The outbox relay running in this process."""
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    """Where fulfilment jobs go."""
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    """Bounds of the maintenance endpoints."""


get_settings = SettingsGetter(OrdersSettings)
"""The process's settings, read once from the environment (``cache_clear()`` in tests)."""


app_settings = app_settings_dependency(OrdersSettings)
"""The settings the running app was built with (what `create_app` was given)."""
