"""Gateway settings: the chassis settings with the gateway's defaults, read from ``GATEWAY_*``.

Defaults make a local run work with no environment at all: users on 8001,
orders on 8002, tokens verified against the users JWKS, rate limits shared in
Redis with a stricter per-IP rule on the credential endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    RateLimitRule,
    RateLimitSettings,
    SettingsGetter,
    app_settings_dependency,
)

#: Upstreams the gateway routes to; a partial override (one URL) keeps the other defaults.
DEFAULT_UPSTREAMS: dict[str, dict[str, Any]] = {
    "users": {"base_url": "http://127.0.0.1:8001"},
    "orders": {"base_url": "http://127.0.0.1:8002"},
}


def _credential_rules() -> list[RateLimitRule]:
    # Both endpoints take a secret: a guess per request must cost the guesser, per IP.
    return [
        RateLimitRule(
            path_prefix="/api/v1/auth/login",
            methods=["POST"],
            requests=10,
            window_seconds=60,
            by_ip=True,
        ),
        RateLimitRule(
            path_prefix="/api/v1/auth/token",
            methods=["POST"],
            requests=10,
            window_seconds=60,
            by_ip=True,
        ),
    ]


class GatewayRateLimitSettings(RateLimitSettings):
    """Rate limits shared by every gateway process (Redis), stricter on credential endpoints."""

    backend: Literal["memory", "redis"] = "redis"
    """`redis` (shared by workers and pods) or `memory` (one process only)."""
    rules: list[RateLimitRule] = Field(default_factory=_credential_rules)
    """Per-path limits, as JSON; the default limits POST /api/v1/auth/login and
    /api/v1/auth/token to 10 per minute per client IP."""


class GatewayAuthSettings(AuthSettings):
    """Verification of users' access tokens at the edge, through the users JWKS."""

    enabled: bool = True
    """Verify bearer tokens (the gateway refuses protected routes without a valid one)."""
    jwks_url: str | None = "http://127.0.0.1:8001/.well-known/jwks.json"
    """Where the users service publishes its keys."""
    issuer: str | None = "chassis-users"
    """Expected `iss` claim."""
    audience: str | None = "chassis-api"
    """Expected `aud` claim."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class EventsSettings(_Group):
    """Live events (SSE and WebSocket) fanned out from one Redis subscription per process."""

    channel_prefix: str = "events"
    """Prefix of the Redis pub/sub channels (`<prefix>.order.created`)."""
    families: list[str] = Field(default_factory=lambda: ["order"], min_length=1)
    """Event families subscribed to, one pattern each (`order` is `<prefix>.order.*`)."""
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    """Idle time after which a connection gets a heartbeat (`: ping` or `{"type": "heartbeat"}`)."""
    queue_size: int = Field(default=100, ge=1)
    """Events buffered per connection; a connection whose buffer is full is closed."""
    dedupe_size: int = Field(default=10_000, ge=1)
    """Recent event ids remembered to drop duplicates (pub/sub is at-least-once upstream)."""
    max_connections_per_subject: int = Field(default=10, ge=1)
    """Live connections one caller may hold open at once; more are refused."""
    close_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long closing a connection may wait for a client that does not read."""
    replay_margin_seconds: float = Field(default=30.0, ge=0)
    """After a Redis outage, events are read back from the replay stream
    (`<prefix>:replay`, written by orders) from this long before the subscription was
    found lost; 0 turns replay off (events published while resubscribing are missed)."""


class OverviewSettings(_Group):
    """`GET /api/v1/me/overview`: profile and recent orders in one call."""

    recent_orders: int = Field(default=5, ge=1, le=100)
    """How many of the caller's most recent orders are included."""
    orders_timeout_seconds: float = Field(default=2.0, gt=0)
    """Budget for the orders part; past it the overview says orders are unavailable."""


class ConsoleSettings(_Group):
    """The web console's built files, served at `/console`."""

    directory: Path | None = Path("console/dist")
    """Where `npm run build` put the console (relative to the working directory);
    nothing is served at `/console` when it holds no `index.html`; null turns it off."""


class StatusSettings(_Group):
    """`GET /api/v1/platform/status`: every service's readiness, for the console."""

    worker_url: str | None = "http://127.0.0.1:8003"
    """Base URL of the worker's health server (the other services are the upstreams);
    null leaves the worker out."""
    timeout_seconds: float = Field(default=2.0, gt=0)
    """How long each service's readiness answer may take before it counts as unreachable."""


class GatewaySettings(BaseServiceSettings):
    """Settings of the gateway, from ``GATEWAY_*`` variables (``__`` nests)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    service_name: str = "gateway"
    """Name in logs, metrics and traces."""
    rate_limit: GatewayRateLimitSettings = Field(default_factory=GatewayRateLimitSettings)
    """Rate-limit settings (Redis-backed by default)."""
    auth: GatewayAuthSettings = Field(default_factory=GatewayAuthSettings)
    """JWT verification settings."""
    events: EventsSettings = Field(default_factory=EventsSettings)
    """Live events settings."""
    overview: OverviewSettings = Field(default_factory=OverviewSettings)
    """Overview aggregation settings."""
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """Web console settings."""
    status: StatusSettings = Field(default_factory=StatusSettings)
    """Platform status settings."""

    @field_validator("upstreams", mode="before")
    @classmethod
    def _with_default_upstreams(cls, value: Any) -> Any:
        # Setting only GATEWAY_UPSTREAMS__USERS__BASE_URL must not drop the orders upstream.
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {name: dict(config) for name, config in DEFAULT_UPSTREAMS.items()}
        for name, config in value.items():
            if isinstance(config, dict) and isinstance(merged.get(name), dict):
                merged[name] = {**merged[name], **config}
            else:
                merged[name] = config
        return merged


get_settings = SettingsGetter(GatewaySettings)
"""The process's settings, read once from the environment (``cache_clear()`` in tests)."""


app_settings = app_settings_dependency(GatewaySettings)
"""The settings the running app was built with (what `create_app` was given)."""
