"""Service settings: one `BaseServiceSettings` subclass per service, read from env.

Every service subclasses `BaseServiceSettings` and sets its own `env_prefix`
(``USERS_``, ``ORDERS_`` ...). Nested groups use ``__``:
``ORDERS_DATABASE__POOL_SIZE=20``. Start-up goes through `load_settings`, which
turns a validation failure into one message naming the environment variables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from starlette.requests import HTTPConnection

from chassis.settings_files import EnvWithoutFilesSource, SettingsFileError, SettingsFilesSource
from chassis.settings_groups import (
    AuthSettings,
    CacheSettings,
    CidrList,
    DatabaseSettings,
    LogSettings,
    MetricsSettings,
    RateLimitRule,
    RateLimitSettings,
    RedisSettings,
    SecuritySettings,
    ServerSettings,
    TracingSettings,
    UpstreamSettings,
)

__all__ = [
    "PLACEHOLDER_SECRETS",
    "PRODUCTION_REQUIRED",
    "AuthSettings",
    "BaseServiceSettings",
    "CacheSettings",
    "CidrList",
    "DatabaseSettings",
    "Environment",
    "LogSettings",
    "MetricsSettings",
    "ProductionSecret",
    "RateLimitRule",
    "RateLimitSettings",
    "RedisSettings",
    "SecuritySettings",
    "ServerSettings",
    "SettingsError",
    "SettingsGetter",
    "SettingsT",
    "TracingSettings",
    "UpstreamSettings",
    "app_settings_dependency",
    "env_var_name",
    "load_settings",
]


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
    """Serve /docs, /redoc (assets under /docs/assets) and /openapi.json; unset means everywhere but
    production."""
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `<VARIABLE>_FILE` beside every variable (chassis.settings_files): secrets as files,
        # so no inspect or describe shows them. A variable and its _FILE together are refused.
        del env_settings  # replaced: the stock source would read X_FILE as a field named x_file
        return (
            init_settings,
            EnvWithoutFilesSource(settings_cls),
            SettingsFilesSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

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
            return self.database.url_with_password()
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
    except SettingsFileError as exc:
        raise SettingsError(f"invalid settings for {settings_cls.__name__}:\n  {exc}") from None
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


class SettingsGetter(Generic[SettingsT]):
    """A service's ``get_settings()``: the environment read once per process.

    Every service declares ``get_settings = SettingsGetter(TheirSettings)``; the
    first call loads through `load_settings` (so a bad variable stops start-up
    with its name), later calls return the same object. ``cache_clear()`` makes
    the next call read the environment again, which tests use after
    ``monkeypatch.setenv``.
    """

    def __init__(self, settings_cls: type[SettingsT]) -> None:
        self.settings_cls = settings_cls
        self._settings: SettingsT | None = None

    def __call__(self) -> SettingsT:
        if self._settings is None:
            self._settings = load_settings(self.settings_cls)
        return self._settings

    def cache_clear(self) -> None:
        self._settings = None


def app_settings_dependency(
    settings_cls: type[SettingsT],
) -> Callable[[HTTPConnection], Awaitable[SettingsT]]:
    """A dependency giving the settings the running app was built with.

    That is what `AppBuilder` stored on ``app.state`` (the object a test passed
    to ``create_app``), not a fresh read of the environment.
    """

    async def app_settings(connection: HTTPConnection) -> SettingsT:
        settings = connection.app.state.settings
        if not isinstance(settings, settings_cls):  # a wiring bug, not a request error
            raise TypeError(
                f"app.state.settings is {type(settings).__name__}, not {settings_cls.__name__}"
            )
        return settings

    app_settings.__name__ = f"{settings_cls.__name__.lower()}_from_app"
    return app_settings
