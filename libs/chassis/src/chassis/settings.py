"""Service settings: one `BaseServiceSettings` subclass per service, read from env.

Every service subclasses `BaseServiceSettings` and sets its own `env_prefix`
(``USERS_``, ``ORDERS_`` ...). Nested groups use ``__``:
``ORDERS_DATABASE__POOL_SIZE=20``. Start-up goes through `load_settings`, which
turns a validation failure into one message naming the environment variables.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    staging = "staging"
    production = "production"


class _ProductionRequired:
    """Marker: this secret must be set (and not a placeholder) in production."""

    def __repr__(self) -> str:  # pragma: no cover - only seen in debug output
        return "ProductionRequired"


PRODUCTION_REQUIRED = _ProductionRequired()

ProductionSecret = Annotated[SecretStr | None, PRODUCTION_REQUIRED]

# Values that mean "someone forgot to set this". Compared case-insensitively.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "placeholder",
        "todo",
        "xxx",
        "dev",
        "development",
        "insecure",
        "example",
    }
)


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


class BaseServiceSettings(BaseSettings):
    """Settings every service shares; subclass and set ``env_prefix``."""

    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=True,
    )

    service_name: str = "service"
    """Name in logs, metrics, traces and the default SQLite file."""
    environment: Environment = Environment.development
    """`development`, `test`, `staging` or `production` (production refuses placeholder secrets and
    hides docs)."""
    version: str = "0.1.0"
    """Reported in the OpenAPI document and traces."""
    docs_enabled: bool | None = None
    """Serve /docs, /redoc and /openapi.json; unset means everywhere but production."""
    data_dir: Path = Path(".data")
    """Directory for embedded data (SQLite files, development keys)."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    """Server, deadline and body-size settings."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    """Database settings."""
    redis: RedisSettings = Field(default_factory=RedisSettings)
    """Redis settings."""
    cache: CacheSettings = Field(default_factory=CacheSettings)
    """Cache settings."""
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    """Rate-limit settings."""
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Hosts, proxies, CORS and security headers."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """JWT verification settings."""
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    """OpenTelemetry settings."""
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    """Prometheus settings."""
    log: LogSettings = Field(default_factory=LogSettings)
    """Logging settings."""
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)
    """Upstream HTTP services by name, e.g. `<PREFIX>UPSTREAMS__ORDERS__BASE_URL`."""

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    @property
    def docs_visible(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return not self.is_production

    @property
    def log_json(self) -> bool:
        if self.log.json_output is not None:
            return self.log.json_output
        return self.environment in (Environment.staging, Environment.production)

    @property
    def database_url(self) -> str:
        """The configured URL, or a SQLite file under ``data_dir`` named after the service."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.sqlite3')}"

    @model_validator(mode="after")
    def _memory_rate_limit_is_single_process(self) -> BaseServiceSettings:
        limit = self.rate_limit
        if limit.enabled and limit.backend == "memory" and self.server.workers > 1:
            backend_var = env_var_name(type(self), ("rate_limit", "backend"))
            workers_var = env_var_name(type(self), ("server", "workers"))
            raise ValueError(
                "rate_limit.backend=memory with server.workers>1 would multiply the limit by "
                f"the worker count; set {backend_var}=redis or {workers_var}=1"
            )
        return self

    @model_validator(mode="after")
    def _production_secrets_are_real(self) -> BaseServiceSettings:
        if not self.is_production:
            return self
        problems = [f"{path}: {reason}" for path, reason in _secret_problems(self, ())]
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


def _secret_problems(model: BaseModel, prefix: tuple[str, ...]) -> list[tuple[str, str]]:
    """Walk a settings tree and list secrets that are missing or placeholders."""
    found: list[tuple[str, str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = ".".join((*prefix, name))
        required = any(isinstance(meta, _ProductionRequired) for meta in field.metadata)
        if isinstance(value, SecretStr):
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                found.append((path, "is a placeholder"))
        elif value is None and required:
            found.append((path, "is required"))
        elif isinstance(value, BaseModel):
            found.extend(_secret_problems(value, (*prefix, name)))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    found.extend(_secret_problems(item, (*prefix, name, str(key))))
    return found


class SettingsError(SystemExit):
    """Raised by `load_settings`: exits start-up with a message naming the env vars."""


SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


def env_var_name(settings_cls: type[BaseServiceSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at `loc`."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    delimiter = str(settings_cls.model_config.get("env_nested_delimiter") or "__")
    parts = [str(part) for part in loc if not isinstance(part, int)]
    return (prefix + delimiter.join(parts)).upper()


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read settings from the environment, or stop start-up naming what is wrong."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            name = (
                env_var_name(settings_cls, loc)
                if loc
                else str(settings_cls.model_config.get("env_prefix", "")).upper() + "*"
            )
            lines.append(f"  {name}: {error['msg']}")
        message = f"invalid settings for {settings_cls.__name__}:\n" + "\n".join(lines)
        raise SettingsError(message) from None
