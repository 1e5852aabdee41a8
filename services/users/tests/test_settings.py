"""Settings: production refuses missing or development secrets; the builder's view."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chassis.auth import generate_rsa_key
from chassis.settings import SettingsError, load_settings
from users.settings import LOGIN_PATH, UsersSettings, get_settings

PEM = generate_rsa_key().to_private_pem().decode()
CLIENTS = {"worker": {"secret": "a-real-production-secret", "scopes": ["orders:internal"]}}


def test_defaults_follow_the_contract() -> None:
    settings = UsersSettings()

    assert settings.service_name == "users"
    assert settings.server.port == 8001
    assert settings.token.issuer == "chassis-users"
    assert settings.token.audience == "chassis-api"
    assert settings.token.access_ttl_seconds == 300
    assert settings.token.refresh_ttl_seconds == 14 * 86_400
    assert settings.service_clients["worker"].scopes == ["orders:internal"]


def test_production_refuses_a_missing_signing_key(monkeypatch) -> None:
    monkeypatch.setenv("USERS_ENVIRONMENT", "production")
    monkeypatch.setenv(
        "USERS_SERVICE_CLIENTS", '{"worker": {"secret": "a-real-production-secret"}}'
    )

    with pytest.raises(SettingsError, match=r"signing\.private_key_pem: is required"):
        load_settings(UsersSettings)


def test_production_refuses_the_development_client_secret() -> None:
    with pytest.raises(ValidationError, match="development default"):
        UsersSettings(environment="production", signing={"private_key_pem": PEM})


def test_production_refuses_a_short_client_secret() -> None:
    with pytest.raises(ValidationError, match="shorter than 16"):
        UsersSettings(
            environment="production",
            signing={"private_key_pem": PEM},
            service_clients={"worker": {"secret": "short-but-real"}},
        )


def test_production_starts_with_a_key_and_real_secrets() -> None:
    settings = UsersSettings(
        environment="production", signing={"private_key_pem": PEM}, service_clients=CLIENTS
    )

    assert settings.is_production


def test_a_malformed_signing_key_is_refused_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("USERS_SIGNING__PRIVATE_KEY_PEM", "-----BEGIN NONSENSE-----")

    with pytest.raises(SettingsError, match="USERS_SIGNING__PRIVATE_KEY_PEM"):
        load_settings(UsersSettings)


def test_json_and_nested_variables_are_read(monkeypatch) -> None:
    monkeypatch.setenv("USERS_TOKEN__ISSUER", "https://id.example.com")
    monkeypatch.setenv("USERS_SERVER__HOST", "0.0.0.0")  # noqa: S104 - a value under test
    monkeypatch.setenv("USERS_ADMIN_EMAILS", '[" Ops@Example.com "]')
    monkeypatch.setenv(
        "USERS_SERVICE_CLIENTS", '{"billing": {"secret": "s3cret-value", "scopes": ["a:b"]}}'
    )

    settings = load_settings(UsersSettings)

    assert settings.token.issuer == "https://id.example.com"
    assert settings.server.port == 8001
    assert settings.admin_emails == ["ops@example.com"]
    assert list(settings.service_clients) == ["billing"]
    assert settings.service_clients["billing"].secret.get_secret_value() == "s3cret-value"


def test_argon2_memory_must_cover_its_lanes() -> None:
    with pytest.raises(ValidationError, match="8 \\* parallelism"):
        UsersSettings(passwords={"memory_cost_kib": 16, "parallelism": 4})


def test_the_builder_verifies_our_own_tokens_and_limits_logins() -> None:
    settings = UsersSettings(
        token={"issuer": "https://id.example.com", "audience": "api"},
        login_limit={"requests": 5, "window_seconds": 30},
    )

    view = settings.for_builder()

    assert view.auth.enabled
    assert view.auth.issuer == "https://id.example.com"
    assert view.auth.audience == "api"
    assert view.auth.jwks_url == "http://127.0.0.1:8001/.well-known/jwks.json"
    (rule,) = view.rate_limit.rules
    assert rule.path_prefix == LOGIN_PATH
    assert (rule.requests, rule.window_seconds, rule.by_ip) == (5, 30, True)
    assert rule.methods == ["POST"]


def test_a_configured_login_rule_is_kept() -> None:
    rule = {"path_prefix": LOGIN_PATH, "requests": 2, "window_seconds": 10, "by_ip": True}
    settings = UsersSettings(rate_limit={"rules": [rule]})

    (kept,) = settings.for_builder().rate_limit.rules

    assert kept.requests == 2


def test_retired_keys_stay_published_until_their_tokens_expire() -> None:
    settings = UsersSettings(token={"access_ttl_seconds": 600}, signing={"key_refresh_seconds": 15})

    assert settings.retired_key_publish_seconds == 600 + 30 + 15


def test_get_settings_reads_the_environment_once(monkeypatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("USERS_TOKEN__AUDIENCE", "first")
    try:
        first = get_settings()
        monkeypatch.setenv("USERS_TOKEN__AUDIENCE", "second")
        assert get_settings() is first
        assert first.token.audience == "first"
    finally:
        get_settings.cache_clear()


def test_an_empty_signing_key_outside_production_means_generated_keys() -> None:
    settings = UsersSettings(signing={"private_key_pem": ""})

    assert settings.signing.private_key_pem is not None
    assert settings.signing.private_key_pem.get_secret_value() == ""
