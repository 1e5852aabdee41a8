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

#: A secret that may be absent in development but must be real in production.
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
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Group):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: Number of server worker processes; the memory rate-limit backend refuses > 1.
    workers: int = Field(default=1, ge=1)
    #: Whole-request deadline; a slower handler is answered with 504.
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Largest accepted request body; larger (even chunked) is answered with 413.
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    #: Seconds the server waits for in-flight requests after SIGTERM.
    graceful_timeout_seconds: float = Field(default=20.0, ge=0)
    #: After SIGTERM, keep serving with readiness 503 this long before the server
    #: stops accepting, so load balancers stop routing first (0 = stop at once;
    #: on Kubernetes a preStop sleep does the same job).
    drain_seconds: float = Field(default=0.0, ge=0)


class DatabaseSettings(_Group):
    #: SQLAlchemy async URL. Empty means SQLite under ``data_dir``.
    url: str | None = None
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    pool_timeout_seconds: float = Field(default=5.0, gt=0)
    pool_recycle_seconds: int = Field(default=1800, ge=-1)
    pool_pre_ping: bool = True
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Postgres ``statement_timeout``; 0 disables it.
    statement_timeout_ms: int = Field(default=5000, ge=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    echo: bool = False


class RedisSettings(_Group):
    url: str = "redis://127.0.0.1:6379/0"
    socket_timeout_seconds: float = Field(default=2.0, gt=0)
    connect_timeout_seconds: float = Field(default=1.0, gt=0)
    max_connections: int = Field(default=50, ge=1)
    health_check_interval_seconds: int = Field(default=30, ge=0)


class CacheSettings(_Group):
    backend: Literal["memory", "redis"] = "memory"
    default_ttl_seconds: float = Field(default=60.0, gt=0)
    key_prefix: str = "cache"
    #: Entries kept by the memory store before the oldest are evicted.
    max_entries: int = Field(default=10_000, ge=1)


class RateLimitRule(_Group):
    """A stricter (or looser) limit for requests whose path starts with `path_prefix`."""

    path_prefix: str
    methods: list[str] = Field(default_factory=list)
    requests: int = Field(ge=1)
    window_seconds: float = Field(gt=0)
    #: Key by client IP even when a principal is known (login brute force).
    by_ip: bool = False


class RateLimitSettings(_Group):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    requests: int = Field(default=100, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    #: When the Redis backend is unreachable: True lets requests through, False answers 503.
    fail_open: bool = True
    key_prefix: str = "ratelimit"
    exempt_paths: list[str] = Field(default_factory=lambda: ["/health/", "/metrics"])
    rules: list[RateLimitRule] = Field(default_factory=list)


class SecuritySettings(_Group):
    #: Host header allowlist; ``*`` allows any. Supports ``*.example.com``.
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    #: Peers whose X-Forwarded-* headers are believed.
    trusted_proxies: CidrList = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cors_allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    cors_allow_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"]
    )
    cors_max_age_seconds: int = Field(default=600, ge=0)
    hsts_max_age_seconds: int = Field(default=63_072_000, ge=0)
    content_security_policy: str = "default-src 'none'; frame-ancestors 'none'"

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
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]] = Field(
        default_factory=lambda: ["RS256", "ES256"]  # type: ignore[arg-type]
    )
    leeway_seconds: float = Field(default=30.0, ge=0)
    jwks_ttl_seconds: float = Field(default=300.0, gt=0)
    #: How long a stale key set is still trusted while the issuer is unreachable.
    jwks_stale_seconds: float = Field(default=3600.0, ge=0)
    #: Minimum gap between refreshes triggered by an unknown kid.
    jwks_min_refresh_interval_seconds: float = Field(default=10.0, ge=0)
    jwks_timeout_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _enabled_needs_issuer(self) -> AuthSettings:
        if self.enabled and not (self.jwks_url and self.issuer and self.audience):
            raise ValueError("auth.enabled needs jwks_url, issuer and audience")
        return self


class TracingSettings(_Group):
    #: Off when False, and also when no OTEL_EXPORTER_OTLP_*ENDPOINT is set.
    enabled: bool = True
    #: Parent-based ratio; None reads OTEL_TRACES_SAMPLER_ARG, else 0.1.
    sample_ratio: float | None = Field(default=None, ge=0, le=1)


class MetricsSettings(_Group):
    enabled: bool = True
    path: str = "/metrics"


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: None means JSON in staging/production and console elsewhere.
    json_output: bool | None = None
    #: Paths whose successful requests are not access-logged.
    quiet_paths: list[str] = Field(default_factory=lambda: ["/health/", "/metrics"])


class UpstreamSettings(_Group):
    base_url: str
    connect_timeout_seconds: float = Field(default=1.0, gt=0)
    read_timeout_seconds: float = Field(default=5.0, gt=0)
    write_timeout_seconds: float = Field(default=5.0, gt=0)
    pool_timeout_seconds: float = Field(default=1.0, gt=0)
    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    retry_attempts: int = Field(default=3, ge=1)
    retry_backoff_initial_seconds: float = Field(default=0.05, ge=0)
    retry_backoff_max_seconds: float = Field(default=1.0, ge=0)
    #: Upper bound on all attempts of one call, backoff included.
    deadline_seconds: float = Field(default=10.0, gt=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    breaker_half_open_max_calls: int = Field(default=1, ge=1)


class BaseServiceSettings(BaseSettings):
    """Settings every service shares; subclass and set ``env_prefix``."""

    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    service_name: str = "service"
    environment: Environment = Environment.development
    version: str = "0.1.0"
    #: Swagger/ReDoc/OpenAPI; None means on everywhere except production.
    docs_enabled: bool | None = None
    data_dir: Path = Path(".data")

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)

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
