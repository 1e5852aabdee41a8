"""Settings of the users service: the chassis groups plus tokens, keys, passwords and clients.

Read from ``USERS_*`` variables (``__`` nests: ``USERS_TOKEN__ACCESS_TTL_SECONDS=600``).
`UsersSettings.for_builder` is the view the chassis builder gets: its auth group
verifies this service's own tokens and the login limit joins the rate-limit rules.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from chassis.auth import SigningKey
from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    ProductionSecret,
    RateLimitRule,
    ServerSettings,
    SettingsGetter,
    app_settings_dependency,
)

#: The worker's client secret outside production, so `make dev` works without set-up.
DEVELOPMENT_CLIENT_SECRET = "worker-development-secret"  # noqa: S105 - refused in production
#: Shortest service-client secret accepted in production.
MIN_PRODUCTION_CLIENT_SECRET_LENGTH = 16
LOGIN_PATH = "/api/v1/auth/login"
JWKS_PATH = "/.well-known/jwks.json"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class UsersServerSettings(ServerSettings):
    port: int = Field(default=8001, ge=1, le=65535)
    """Port the server listens on."""


class TokenSettings(_Group):
    issuer: str = "chassis-users"
    """`iss` of every token this service signs (verifiers expect it)."""
    audience: str = "chassis-api"
    """`aud` of every token this service signs (verifiers expect it)."""
    access_ttl_seconds: int = Field(default=300, ge=30, le=86_400)
    """Lifetime of an access token."""
    refresh_ttl_seconds: int = Field(default=14 * 86_400, ge=60)
    """Lifetime of a refresh token; each rotation starts a new one."""


def _check_private_key(value: SecretStr | None) -> SecretStr | None:
    if value is not None and value.get_secret_value().strip():
        try:
            SigningKey.from_private_pem(value.get_secret_value())
        except (ValueError, TypeError) as exc:
            raise ValueError("not a PEM private RSA or EC key (PKCS#8 or PKCS#1)") from exc
    return value


class SigningSettings(_Group):
    private_key_pem: Annotated[ProductionSecret, AfterValidator(_check_private_key)] = None
    """PEM private key that signs tokens (required in production; rotate by replacing it).
    Unset elsewhere: keys are generated and kept in the `signing_keys` table."""
    key_refresh_seconds: float = Field(default=30.0, gt=0)
    """How often a process re-reads the signing keys (picks up `users-rotate-keys`)."""
    rsa_bits: int = Field(default=2048, ge=2048)
    """Size of generated RSA keys."""


class PasswordSettings(_Group):
    """argon2id cost; the defaults are RFC 9106's low-memory profile."""

    time_cost: int = Field(default=3, ge=1)
    """argon2 iterations."""
    memory_cost_kib: int = Field(default=65_536, ge=8)
    """argon2 memory per hash, in KiB (64 MiB by default)."""
    parallelism: int = Field(default=4, ge=1)
    """argon2 lanes."""
    max_concurrent_hashes: int = Field(default=4, ge=1)
    """Hashes computed at once per process (bounds memory: this times memory_cost_kib)."""

    @model_validator(mode="after")
    def _memory_covers_lanes(self) -> PasswordSettings:
        if self.memory_cost_kib < 8 * self.parallelism:
            raise ValueError("memory_cost_kib must be at least 8 * parallelism")
        return self


class LoginLimitSettings(_Group):
    requests: int = Field(default=10, ge=1)
    """Login attempts allowed per client IP per window."""
    window_seconds: float = Field(default=60.0, gt=0)
    """Length of the login window."""
    account_requests: int = Field(default=10, ge=1)
    """Login attempts allowed per account (email) per account window, from any IP."""
    account_window_seconds: float = Field(default=300.0, gt=0)
    """Length of the per-account login window."""


class ServiceClient(_Group):
    """A machine client of the client-credentials grant."""

    secret: SecretStr
    """The client secret."""
    scopes: list[str] = Field(default_factory=list)
    """Scopes its tokens carry."""


def _normalise_emails(values: list[str]) -> list[str]:
    return [value.strip().lower() for value in values]


def _default_clients() -> dict[str, ServiceClient]:
    return {
        "worker": ServiceClient(
            secret=SecretStr(DEVELOPMENT_CLIENT_SECRET), scopes=["orders:internal"]
        )
    }


class UsersSettings(BaseServiceSettings):
    """Everything the users service reads from ``USERS_*``."""

    model_config = SettingsConfigDict(env_prefix="USERS_")

    service_name: str = "users"
    """Name in logs, metrics, traces and the default SQLite file."""
    server: UsersServerSettings = Field(default_factory=UsersServerSettings)
    """Server, deadline and body-size settings."""
    token: TokenSettings = Field(default_factory=TokenSettings)
    """Claims and lifetimes of issued tokens."""
    signing: SigningSettings = Field(default_factory=SigningSettings)
    """Where the signing key comes from."""
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    """Password hashing cost."""
    login_limit: LoginLimitSettings = Field(default_factory=LoginLimitSettings)
    """The stricter rate limits on `POST /api/v1/auth/login`, by client IP and by account."""
    admin_emails: Annotated[list[str], AfterValidator(_normalise_emails)] = Field(
        default_factory=list
    )
    """Emails that get the admin role when they sign up, as JSON: `["ops@example.com"]`."""
    service_clients: dict[str, ServiceClient] = Field(default_factory=_default_clients)
    """Client-credentials clients, as JSON:
    `{"worker": {"secret": "...", "scopes": ["orders:internal"]}}`."""

    @model_validator(mode="after")
    def _production_client_secrets(self) -> UsersSettings:
        if not self.is_production:
            return self
        for name, client in self.service_clients.items():
            secret = client.secret.get_secret_value()
            if secret == DEVELOPMENT_CLIENT_SECRET:
                raise ValueError(
                    f"refusing to start in production: service_clients.{name}.secret is the "
                    "development default"
                )
            if len(secret) < MIN_PRODUCTION_CLIENT_SECRET_LENGTH:
                raise ValueError(
                    f"refusing to start in production: service_clients.{name}.secret is shorter "
                    f"than {MIN_PRODUCTION_CLIENT_SECRET_LENGTH} characters"
                )
        return self

    @property
    def retired_key_publish_seconds(self) -> float:
        """How long a retired key stays in the JWKS: until every token it signed has expired.

        A process may sign with the old key for up to one refresh interval after a
        rotation, and verifiers tolerate clock skew, hence the two extra terms.
        """
        return (
            self.token.access_ttl_seconds
            + self.auth.leeway_seconds
            + self.signing.key_refresh_seconds
        )

    def for_builder(self) -> UsersSettings:
        """These settings as the chassis builder should see them.

        Auth verifies the tokens this service signs (issuer, audience and keys
        from here, read in-process), and the login limit is added to the
        rate-limit rules unless a rule for the login path is configured already.
        """
        auth = AuthSettings(
            **{
                **self.auth.model_dump(),
                "enabled": True,
                "issuer": self.token.issuer,
                "audience": self.token.audience,
                "jwks_url": self.auth.jwks_url
                or f"http://{self.server.host}:{self.server.port}{JWKS_PATH}",
                "jwks_ttl_seconds": self.signing.key_refresh_seconds,
            }
        )
        rules = list(self.rate_limit.rules)
        if not any(rule.path_prefix == LOGIN_PATH for rule in rules):
            rules.append(
                RateLimitRule(
                    path_prefix=LOGIN_PATH,
                    methods=["POST"],
                    requests=self.login_limit.requests,
                    window_seconds=self.login_limit.window_seconds,
                    by_ip=True,
                )
            )
        rate_limit = self.rate_limit.model_copy(update={"rules": rules})
        return self.model_copy(update={"auth": auth, "rate_limit": rate_limit})


class MigrationSettings(BaseServiceSettings):
    """What Alembic needs: the database URL from the same ``USERS_*`` variables.

    Kept apart from `UsersSettings` so that a migrations job needs no signing key
    or client secrets.
    """

    model_config = SettingsConfigDict(env_prefix="USERS_")

    service_name: str = "users"
    """Name in logs, metrics, traces and the default SQLite file."""


get_settings = SettingsGetter(UsersSettings)
"""The process's settings, read once from the environment (``cache_clear()`` in tests)."""

app_settings = app_settings_dependency(UsersSettings)
"""The settings the running app was built with (`for_builder` of what `create_app` was given)."""
