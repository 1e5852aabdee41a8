"""Worker settings: contract defaults, partial env overrides, production refusals."""

from __future__ import annotations

import pytest

from chassis.settings import SettingsError, load_settings
from worker.settings import WorkerSettings, get_settings


def test_defaults_follow_the_contract() -> None:
    settings = WorkerSettings()

    assert settings.service_name == "worker"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8003)
    assert settings.upstreams["orders"].base_url == "http://127.0.0.1:8002"
    assert settings.upstreams["users"].base_url == "http://127.0.0.1:8001"
    assert settings.client_id == "worker"
    assert settings.client_secret is not None
    # The users service's development default for this client: both run out of the box.
    assert settings.client_secret.get_secret_value() == "worker-development-secret"
    assert settings.jobs.queue_name == "arq:queue"
    assert (settings.fulfil.latency_seconds, settings.fulfil.failure_rate) == (0.05, 0.0)
    assert settings.crons.pending_ttl_seconds == 900
    assert settings.crons.idempotency_ttl_seconds == 24 * 3600
    assert settings.crons.outbox_sent_ttl_seconds == 7 * 24 * 3600


def test_one_env_var_changes_one_field_and_keeps_the_other_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_UPSTREAMS__ORDERS__BASE_URL", "http://orders.internal:8002")
    monkeypatch.setenv("WORKER_UPSTREAMS__USERS__RETRY_ATTEMPTS", "5")
    monkeypatch.setenv("WORKER_SERVER__HOST", "192.0.2.10")
    monkeypatch.setenv("WORKER_FULFIL__FAILURE_RATE", "0.25")
    monkeypatch.setenv("WORKER_CLIENT_SECRET", "from-the-vault")

    settings = load_settings(WorkerSettings)

    assert settings.upstreams["orders"].base_url == "http://orders.internal:8002"
    assert settings.upstreams["users"].base_url == "http://127.0.0.1:8001"
    assert settings.upstreams["users"].retry_attempts == 5
    assert (settings.server.host, settings.server.port) == ("192.0.2.10", 8003)
    assert settings.fulfil.failure_rate == 0.25
    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == "from-the-vault"


def test_production_refuses_the_development_client_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKER_ENVIRONMENT", "production")

    with pytest.raises(SettingsError, match="client_secret is the development default"):
        load_settings(WorkerSettings)

    monkeypatch.setenv("WORKER_CLIENT_SECRET", "a-real-secret-from-the-vault")
    assert load_settings(WorkerSettings).is_production


def test_a_bad_value_names_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_FULFIL__FAILURE_RATE", "1.5")

    with pytest.raises(SettingsError, match="WORKER_FULFIL__FAILURE_RATE"):
        load_settings(WorkerSettings)


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("WORKER_JOBS__MAX_JOBS", "3")
    try:
        first = get_settings()
        monkeypatch.setenv("WORKER_JOBS__MAX_JOBS", "4")
        assert get_settings() is first
        assert first.jobs.max_jobs == 3
    finally:
        get_settings.cache_clear()
