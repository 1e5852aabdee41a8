"""The setting groups every service shares: server, database, Redis, cache, limits, security...

Each group is a frozen pydantic model nested under `BaseServiceSettings` (chassis.settings,
which re-exports them all: import them from there). Attribute docstrings are the documentation
`make docs` renders into docs/settings.md.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator


def _check_cidrs(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)
    return values


CidrList = Annotated[list[str], AfterValidator(_check_cidrs)]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ServerSettings(_Group):
    host: str = "127.0.0.1"
    """Interface the server binds to."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port the server listens on."""
    workers: int = Field(default=1, ge=1)
    """Server worker processes; the memory rate-limit backend refuses more than 1."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline for a request to start its response; later ones get 504."""
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    """Largest request body accepted; larger ones, chunked included, get 413."""
    max_header_bytes: int = Field(default=16_384, ge=1024)
    """Largest request target plus headers accepted; larger ones get 431."""
    max_concurrent_requests: int | None = Field(default=None, ge=0)
    """Requests one process works on at once; the next gets 503 with Retry-After at once.
    Unset: four per pooled connection (`4 * (pool_size + max_overflow)`) in a service with a
    database, else 100; 0 means no limit. Health and metrics paths never count."""
    shed_retry_after_seconds: int = Field(default=1, ge=0)
    """Retry-After of the 503 a request gets when the process is at its limit."""
    shed_exempt_paths: list[str] = Field(default_factory=lambda: ["/health/"])
    """Path prefixes never refused by the concurrency limit (the metrics path is always exempt)."""
    cancel_on_disconnect: bool = True
    """Cancel a request's handler when its client disconnects before the answer starts."""
    graceful_timeout_seconds: float = Field(default=20.0, ge=0)
    """How long the server waits for in-flight requests after SIGTERM."""
    drain_seconds: float = Field(default=0.0, ge=0)
    """After SIGTERM, keep serving with readiness 503 this long before the server stops accepting
    (0 stops at once; on Kubernetes a preStop sleep does this)."""
    freeze_heap_after_startup: bool = True
    """After start-up, collect once and `gc.freeze()` what is alive, so that full garbage
    collections skip the start-up heap (they paused the loop 30-90 ms each; docs/adr/0017)."""


class DatabaseSettings(_Group):
    url: str | None = None
    """SQLAlchemy async URL (`postgresql+asyncpg://...`); unset means SQLite at
    `<data_dir>/<service_name>.sqlite3`."""
    password: SecretStr | None = None
    """Password for the URL's user, replacing any in `url`: the URL stays plain configuration
    and the password comes from a secret (`<PREFIX>DATABASE__PASSWORD_FILE`)."""
    pool_size: int = Field(default=10, ge=1)
    """Postgres connections kept open per process."""
    max_overflow: int = Field(default=5, ge=0)
    """Extra Postgres connections allowed above pool_size under load."""
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a request waits for a free connection before failing with 503."""
    pool_recycle_seconds: int = Field(default=1800, ge=-1)
    """Replace connections older than this (-1 never)."""
    pool_pre_ping: bool = True
    """Test a pooled connection before use, so a restarted database is noticed."""
    pool_pre_ping_idle_seconds: float = Field(default=1.0, ge=0)
    """Pre-ping only connections that sat in the pool at least this long (0: on every use).
    A connection returned moments ago was just working; pinging it costs three round trips."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Deadline for opening a new database connection."""
    statement_timeout_ms: int = Field(default=5000, ge=0)
    """Postgres statement_timeout for every statement (0 disables it)."""
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    """SQLite busy_timeout: how long a writer waits for the lock."""
    echo: bool = False
    """Log every SQL statement (development only)."""

    def url_with_password(self) -> str:
        """`url` with `password` put in (the password URL-quoted by SQLAlchemy)."""
        if self.url is None or self.password is None:
            return self.url or ""
        from sqlalchemy.engine import make_url  # only services with a database pay the import

        url = make_url(self.url).set(password=self.password.get_secret_value())
        return url.render_as_string(hide_password=False)


class RedisSettings(_Group):
    url: str = "redis://127.0.0.1:6379/0"
    """Redis URL, database index included."""
    socket_timeout_seconds: float = Field(default=2.0, gt=0)
    """Deadline for one Redis command."""
    connect_timeout_seconds: float = Field(default=1.0, gt=0)
    """Deadline for opening a Redis connection."""
    max_connections: int = Field(default=50, ge=1)
    """Connections in the per-process Redis pool."""
    health_check_interval_seconds: int = Field(default=30, ge=0)
    """Ping idle connections older than this before reuse (0 never)."""


class CacheSettings(_Group):
    backend: Literal["memory", "redis"] = "memory"
    """`memory` (one process) or `redis` (shared; needs the redis step)."""
    default_ttl_seconds: float = Field(default=60.0, gt=0)
    """Lifetime of a cache entry when the caller gives none."""
    key_prefix: str = "cache"
    """Prefix of every cache key in Redis; clear() deletes only these."""
    max_entries: int = Field(default=10_000, ge=1)
    """Entries the memory store keeps before evicting the least recently used."""


class RateLimitRule(_Group):
    """A stricter (or looser) limit for requests whose path starts with `path_prefix`."""

    path_prefix: str
    """Requests whose path starts with this use the rule (longest prefix wins)."""
    methods: list[str] = Field(default_factory=list)
    """HTTP methods the rule applies to; empty means all."""
    requests: int = Field(ge=1)
    """Requests allowed per window."""
    window_seconds: float = Field(gt=0)
    """Length of the sliding window."""
    by_ip: bool = False
    """Key by client IP even when a principal is known (login brute force)."""


class RateLimitSettings(_Group):
    enabled: bool = True
    """Apply rate limits."""
    backend: Literal["memory", "redis"] = "memory"
    """`memory` (one process only) or `redis` (shared by workers and pods; needs the redis step)."""
    requests: int = Field(default=100, ge=1)
    """Requests allowed per window by default."""
    window_seconds: float = Field(default=60.0, gt=0)
    """Length of the default sliding window."""
    fail_open: bool = True
    """When Redis is unreachable: true lets requests through, false answers 503 (a warning is
    logged either way)."""
    backend_retry_seconds: float = Field(default=1.0, ge=0)
    """After Redis failed a rate-limit call, requests skip it (and take `fail_open` at once)
    for this long, then one tries it again; 0 asks Redis on every request."""
    key_prefix: str = "ratelimit"
    """Prefix of rate-limit keys in Redis, followed by the service name (each service counts
    its own requests)."""
    exempt_paths: list[str] = Field(default_factory=lambda: ["/health/", "/metrics"])
    """Path prefixes never limited."""
    rules: list[RateLimitRule] = Field(default_factory=list)
    """Per-path limits, as JSON: `[{"path_prefix": "/api/v1/auth/login", "methods": ["POST"],
    "requests": 5, "window_seconds": 60, "by_ip": true}]`."""


class SecuritySettings(_Group):
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    """Host header allowlist; `*` allows any, `*.example.com` a domain's subdomains."""
    trusted_proxies: CidrList = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    """CIDRs of proxies whose X-Forwarded-For/Proto are believed."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed by CORS; empty turns CORS off."""
    cors_allow_credentials: bool = False
    """Allow cookies/credentials cross-origin (refused together with `*`)."""
    cors_allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    """Methods allowed in CORS requests."""
    cors_allow_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"]
    )
    """Request headers allowed in CORS requests."""
    cors_max_age_seconds: int = Field(default=600, ge=0)
    """How long browsers may cache a preflight answer."""
    hsts_max_age_seconds: int = Field(default=63_072_000, ge=0)
    """Strict-Transport-Security max-age, sent over https only."""
    content_security_policy: str = "default-src 'none'; frame-ancestors 'none'"
    """Content-Security-Policy for API responses (docs pages get a relaxed one)."""

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> SecuritySettings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "cors_origins may not contain '*' when cors_allow_credentials is true: "
                "browsers would send cookies to any site; list the origins instead"
            )
        return self


class AuthSettings(_Group):
    enabled: bool = False
    """Verify bearer tokens (needs jwks_url, issuer, audience)."""
    jwks_url: str | None = None
    """Where the issuer publishes its keys (`.../.well-known/jwks.json`)."""
    issuer: str | None = None
    """Expected `iss` claim."""
    audience: str | None = None
    """Expected `aud` claim."""
    algorithms: list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]] = Field(
        default_factory=lambda: ["RS256", "ES256"]  # type: ignore[arg-type]
    )
    """Accepted signature algorithms (asymmetric only; `none` and HS* are always refused)."""
    leeway_seconds: float = Field(default=30.0, ge=0)
    """Clock skew tolerated on exp, nbf and iat."""
    jwks_ttl_seconds: float = Field(default=300.0, gt=0)
    """How long a fetched key set is fresh."""
    jwks_stale_seconds: float = Field(default=3600.0, ge=0)
    """How long a stale key set is still trusted while the issuer is unreachable."""
    jwks_min_refresh_interval_seconds: float = Field(default=10.0, ge=0)
    """Minimum gap between refreshes triggered by an unknown kid."""
    jwks_timeout_seconds: float = Field(default=2.0, gt=0)
    """Deadline for fetching the key set."""
    verified_token_cache_size: int = Field(default=4096, ge=0)
    """Tokens remembered as verified until they expire or the key set changes (0: verify
    every request's signature)."""

    @model_validator(mode="after")
    def _enabled_needs_issuer(self) -> AuthSettings:
        if self.enabled and not (self.jwks_url and self.issuer and self.audience):
            raise ValueError("auth.enabled needs jwks_url, issuer and audience")
        return self


class TracingSettings(_Group):
    enabled: bool = True
    """Trace requests; off anyway when no OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set."""
    sample_ratio: float | None = Field(default=None, ge=0, le=1)
    """Parent-based sampling ratio; unset reads OTEL_TRACES_SAMPLER_ARG, else 0.1."""
    flush_timeout_seconds: float = Field(default=5.0, ge=0)
    """At shutdown, how long to wait for unsent spans; a collector that is down never
    holds up shutdown longer than this."""


class MetricsSettings(_Group):
    enabled: bool = True
    """Serve Prometheus metrics and record RED metrics."""
    path: str = "/metrics"
    """Path of the Prometheus endpoint."""


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Root log level."""
    json_output: bool | None = None
    """JSON lines; unset means JSON in staging/production and console elsewhere."""
    quiet_paths: list[str] = Field(default_factory=lambda: ["/health/", "/metrics"])
    """Path prefixes whose successful requests are not access-logged."""
    otlp_export: bool = False
    """Also send every log line to the OTLP collector (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``), with its trace and span ids; stdout keeps them."""
    access_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Fraction of successful (below 400) requests that get an access line; failures always do.
    1.0 logs every request; each line costs about a fifth of the chassis' own time per
    request (docs/adr/0010)."""


class UpstreamSettings(_Group):
    base_url: str
    """The upstream's base URL."""
    connect_timeout_seconds: float = Field(default=1.0, gt=0)
    """Deadline for opening a connection."""
    read_timeout_seconds: float = Field(default=5.0, gt=0)
    """Deadline for each read of the answer."""
    write_timeout_seconds: float = Field(default=5.0, gt=0)
    """Deadline for each write of the request."""
    pool_timeout_seconds: float = Field(default=1.0, gt=0)
    """How long to wait for a free pooled connection."""
    max_connections: int = Field(default=100, ge=1)
    """Connections to this upstream per process."""
    max_keepalive_connections: int = Field(default=20, ge=0)
    """Idle connections kept for reuse."""
    keepalive_expiry_seconds: float = Field(default=4.0, gt=0)
    """Close a pooled connection idle this long. Keep it below the upstream server's own
    keep-alive timeout (uvicorn's, ``KEEP_ALIVE``, is 5 s here): a connection the server
    closes just as a call reuses it fails that call, and a POST is never retried."""
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """Connection pool under the httpx client: aiohttp's (httpx-aiohttp), or httpx's own,
    which cost about three times the CPU per call here (docs/adr/0011)."""
    retry_attempts: int = Field(default=3, ge=1)
    """Attempts for an idempotent call (1 disables retries)."""
    retry_backoff_initial_seconds: float = Field(default=0.05, ge=0)
    """First retry backoff; grows exponentially with full jitter."""
    retry_backoff_max_seconds: float = Field(default=1.0, ge=0)
    """Largest backoff between attempts."""
    deadline_seconds: float = Field(default=10.0, gt=0)
    """Upper bound on all attempts of one call, backoff included."""
    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open the circuit breaker."""
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    """How long the breaker stays open before a probe."""
    breaker_half_open_max_calls: int = Field(default=1, ge=1)
    """Probe calls allowed at once while half-open."""
