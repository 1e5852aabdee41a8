"""Orders settings: the contract's defaults, and environment variables that override them."""

from __future__ import annotations

import pytest

from chassis.settings import SettingsError
from orders.settings import OrdersSettings, get_settings


def test_defaults_follow_the_services_contract() -> None:
    settings = OrdersSettings()

    assert settings.service_name == "orders"
    assert settings.server.port == 8002
    assert settings.auth.enabled is True
    assert settings.auth.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert settings.auth.issuer == "chassis-users"
    assert settings.auth.audience == "chassis-api"
    assert settings.auth.algorithms == ["RS256"]
    assert settings.outbox.relay_enabled is True
    assert settings.jobs.queue_name == "arq:queue"
    assert settings.database_url.endswith("orders.sqlite3")


def test_one_auth_variable_keeps_the_other_orders_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_AUTH__JWKS_URL", "http://users:8001/.well-known/jwks.json")
    monkeypatch.setenv("ORDERS_SERVER__HOST", "10.0.0.5")

    settings = OrdersSettings()

    assert settings.auth.jwks_url == "http://users:8001/.well-known/jwks.json"
    assert settings.auth.issuer == "chassis-users"
    assert settings.auth.enabled is True
    assert settings.server.port == 8002


def test_the_relay_and_queue_are_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_OUTBOX__RELAY_ENABLED", "false")
    monkeypatch.setenv("ORDERS_JOBS__QUEUE_NAME", "orders:queue")
    monkeypatch.setenv("ORDERS_DATABASE__URL", "postgresql+asyncpg://db/orders")

    settings = OrdersSettings()

    assert settings.outbox.relay_enabled is False
    assert settings.jobs.queue_name == "orders:queue"
    assert settings.database_url == "postgresql+asyncpg://db/orders"


def test_a_bad_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERS_OUTBOX__BATCH_SIZE", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="ORDERS_OUTBOX__BATCH_SIZE"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_every_orders_setting_is_documented() -> None:
    for group in ("outbox", "jobs", "maintenance"):
        model = type(getattr(OrdersSettings(), group))
        for name, field in model.model_fields.items():
            assert field.description, f"{group}.{name}"
