"""Gateway settings: defaults that run locally, env overrides that keep the other defaults."""

from __future__ import annotations

import pytest

from chassis.settings import SettingsError
from gateway.settings import GatewaySettings, get_settings


@pytest.fixture(autouse=True)
def _uncached() -> None:
    get_settings.cache_clear()


def test_defaults_point_at_the_local_services() -> None:
    settings = get_settings()

    assert settings.service_name == "gateway"
    assert settings.server.port == 8000
    assert settings.upstreams["users"].base_url == "http://127.0.0.1:8001"
    assert settings.upstreams["orders"].base_url == "http://127.0.0.1:8002"
    assert settings.auth.enabled
    assert settings.auth.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert (settings.auth.issuer, settings.auth.audience) == ("chassis-users", "chassis-api")
    assert settings.events.heartbeat_seconds == 15
    assert settings.events.queue_size == 100


def test_one_upstream_url_from_the_environment_keeps_the_other_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAMS__ORDERS__BASE_URL", "http://orders:8002")
    monkeypatch.setenv("GATEWAY_UPSTREAMS__ORDERS__DEADLINE_SECONDS", "3")

    settings = get_settings()

    assert settings.upstreams["orders"].base_url == "http://orders:8002"
    assert settings.upstreams["orders"].deadline_seconds == 3
    assert settings.upstreams["users"].base_url == "http://127.0.0.1:8001"


def test_a_partial_rate_limit_override_keeps_redis_and_the_login_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_RATE_LIMIT__REQUESTS", "500")
    monkeypatch.setenv("GATEWAY_EVENTS__QUEUE_SIZE", "7")

    settings = get_settings()

    assert settings.rate_limit.requests == 500
    assert settings.rate_limit.backend == "redis"
    assert [rule.path_prefix for rule in settings.rate_limit.rules] == [
        "/api/v1/auth/login",
        "/api/v1/auth/token",
    ]
    assert settings.events.queue_size == 7


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_EVENTS__QUEUE_SIZE", "0")

    with pytest.raises(SettingsError, match="GATEWAY_EVENTS__QUEUE_SIZE"):
        get_settings()


def test_upstreams_given_as_models_replace_the_defaults_by_name() -> None:
    from chassis.settings import UpstreamSettings

    settings = GatewaySettings(upstreams={"users": UpstreamSettings(base_url="http://u:1")})

    assert settings.upstreams["users"].base_url == "http://u:1"
    assert settings.upstreams["orders"].base_url == "http://127.0.0.1:8002"


def test_every_setting_is_documented() -> None:
    from pydantic import BaseModel

    def undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                missing += undocumented(annotation, f"{prefix}{name}.")
        return missing

    assert undocumented(GatewaySettings) == []
