"""Settings: env prefix, nesting, secrets, production refusals, messages naming variables."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from chassis.settings import (
    BaseServiceSettings,
    Environment,
    ProductionSecret,
    SettingsError,
    SettingsGetter,
    app_settings_dependency,
    env_var_name,
    load_settings,
)


class ShopSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")

    service_name: str = "shop"
    signing_key: ProductionSecret = None
    webhook_secret: SecretStr = SecretStr("changeme")


def test_env_prefix_and_nested_delimiter_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DATABASE__POOL_SIZE", "25")
    monkeypatch.setenv("SHOP_SERVER__REQUEST_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("SHOP_UPSTREAMS__ORDERS__BASE_URL", "http://orders:8002")
    monkeypatch.setenv("OTHER_DATABASE__POOL_SIZE", "99")

    settings = load_settings(ShopSettings)

    assert settings.database.pool_size == 25
    assert settings.server.request_timeout_seconds == 2.5
    assert settings.upstreams["orders"].base_url == "http://orders:8002"


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_SIGNING_KEY", "s3cr3t-value-xyz")
    settings = load_settings(ShopSettings)
    assert "s3cr3t-value-xyz" not in repr(settings)
    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == "s3cr3t-value-xyz"


def test_bad_value_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DATABASE__POOL_SIZE", "lots")
    with pytest.raises(SettingsError) as exc_info:
        load_settings(ShopSettings)
    assert "SHOP_DATABASE__POOL_SIZE" in str(exc_info.value)


def test_production_refuses_missing_and_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_ENVIRONMENT", "production")
    with pytest.raises(SettingsError) as exc_info:
        load_settings(ShopSettings)
    message = str(exc_info.value)
    assert "signing_key: is required" in message
    assert "webhook_secret: is a placeholder" in message


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_ENVIRONMENT", "production")
    monkeypatch.setenv("SHOP_SIGNING_KEY", "a-long-random-value")
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", "another-long-random-value")
    settings = load_settings(ShopSettings)
    assert settings.is_production
    assert settings.docs_visible is False
    assert settings.log_json is True


def test_development_tolerates_placeholders() -> None:
    settings = load_settings(ShopSettings)
    assert settings.environment is Environment.development
    assert settings.docs_visible is True
    assert settings.log_json is False


def test_docs_can_be_enabled_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_ENVIRONMENT", "production")
    monkeypatch.setenv("SHOP_SIGNING_KEY", "a-long-random-value")
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", "another-long-random-value")
    monkeypatch.setenv("SHOP_DOCS_ENABLED", "true")
    assert load_settings(ShopSettings).docs_visible is True


def test_cors_wildcard_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_SECURITY__CORS_ORIGINS", '["*"]')
    monkeypatch.setenv("SHOP_SECURITY__CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(SettingsError) as exc_info:
        load_settings(ShopSettings)
    assert "SHOP_SECURITY" in str(exc_info.value)
    assert "cors_allow_credentials" in str(exc_info.value)


def test_memory_rate_limit_with_several_workers_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_SERVER__WORKERS", "4")
    with pytest.raises(SettingsError, match="SHOP_RATE_LIMIT__BACKEND=redis"):
        load_settings(ShopSettings)
    monkeypatch.setenv("SHOP_RATE_LIMIT__BACKEND", "redis")
    assert load_settings(ShopSettings).server.workers == 4


def test_invalid_trusted_proxy_cidr_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_SECURITY__TRUSTED_PROXIES", '["10.0.0.0/8", "not-a-network"]')
    with pytest.raises(SettingsError, match="SHOP_SECURITY__TRUSTED_PROXIES"):
        load_settings(ShopSettings)


def test_auth_enabled_needs_issuer_details(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_AUTH__ENABLED", "true")
    with pytest.raises(SettingsError, match="jwks_url"):
        load_settings(ShopSettings)


def test_database_url_defaults_to_sqlite_under_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DATA_DIR", "/var/lib/shop")
    assert load_settings(ShopSettings).database_url == (
        "sqlite+aiosqlite:////var/lib/shop/shop.sqlite3"
    )
    monkeypatch.setenv("SHOP_DATABASE__URL", "postgresql+asyncpg://db/shop")
    assert load_settings(ShopSettings).database_url == "postgresql+asyncpg://db/shop"


def test_env_var_name_skips_list_indexes() -> None:
    assert env_var_name(ShopSettings, ("rate_limit", "rules", 0, "requests")) == (
        "SHOP_RATE_LIMIT__RULES__REQUESTS"
    )


def test_settings_getter_reads_once_until_cache_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings = SettingsGetter(ShopSettings)
    monkeypatch.setenv("SHOP_DATABASE__POOL_SIZE", "7")
    first = get_settings()
    monkeypatch.setenv("SHOP_DATABASE__POOL_SIZE", "9")
    assert get_settings() is first
    assert first.database.pool_size == 7
    get_settings.cache_clear()
    assert get_settings().database.pool_size == 9


def test_settings_getter_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_DATABASE__POOL_SIZE", "many")
    with pytest.raises(SettingsError, match="SHOP_DATABASE__POOL_SIZE"):
        SettingsGetter(ShopSettings)()


async def test_app_settings_dependency_returns_what_the_app_was_built_with() -> None:
    settings = ShopSettings(service_name="built-with")
    dependency = app_settings_dependency(ShopSettings)
    connection = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=settings)))
    assert await dependency(connection) is settings  # type: ignore[arg-type]
    wrong = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(settings=object())))
    with pytest.raises(TypeError, match="not ShopSettings"):
        await dependency(wrong)  # type: ignore[arg-type]
