"""Choosing the backend from settings, and refusing a memory backend shared by workers."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from chassis.middleware.ratelimit import (
    MemorySlidingWindow,
    RateLimitBackend,
    RedisSlidingWindow,
    build_rate_limiter,
)
from chassis.middleware.ratelimit.backoff import BackingOffBackend
from chassis.settings import BaseServiceSettings, SettingsError, load_settings


def test_memory_is_the_default_backend() -> None:
    backend = build_rate_limiter(load_settings(BaseServiceSettings))

    assert isinstance(backend, MemorySlidingWindow)


async def test_redis_backend_uses_the_client_and_key_prefix_from_settings(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("APP_RATE_LIMIT__BACKEND", "redis")
    monkeypatch.setenv("APP_RATE_LIMIT__KEY_PREFIX", "edge-limits")
    backend = build_rate_limiter(load_settings(BaseServiceSettings), redis_client)

    # Behind the back-off (rate_limit.backend_retry_seconds, 1 s by default).
    assert isinstance(backend, BackingOffBackend)
    assert backend.retry_seconds == 1.0
    assert isinstance(backend.backend, RedisSlidingWindow)
    assert (await backend.hit("ip:192.0.2.1", limit=1, window_seconds=5)).allowed
    assert await redis_client.keys("*") == [b"edge-limits:service:ip:192.0.2.1"]


def test_no_back_off_when_its_retry_is_zero(redis_client: redis.Redis) -> None:
    settings = load_settings(
        BaseServiceSettings, rate_limit={"backend": "redis", "backend_retry_seconds": 0}
    )
    assert isinstance(build_rate_limiter(settings, redis_client), RedisSlidingWindow)


async def test_two_services_on_one_redis_never_share_a_budget(
    redis_client: redis.Redis,
) -> None:
    # A gateway and the users service behind it both limit the login path per IP:
    # with shared keys every attempt would count twice and halve both limits.
    def backend(service_name: str) -> RateLimitBackend:
        settings = load_settings(
            BaseServiceSettings, service_name=service_name, rate_limit={"backend": "redis"}
        )
        return build_rate_limiter(settings, redis_client)

    gateway, users, users_replica = backend("gateway"), backend("users"), backend("users")

    assert (await gateway.hit("ip:192.0.2.1", limit=1, window_seconds=5)).allowed
    assert (await users.hit("ip:192.0.2.1", limit=1, window_seconds=5)).allowed
    assert not (await users_replica.hit("ip:192.0.2.1", limit=1, window_seconds=5)).allowed


def test_redis_backend_without_a_client_is_a_clear_error() -> None:
    settings = load_settings(BaseServiceSettings, rate_limit={"backend": "redis"})

    with pytest.raises(ValueError, match="needs a Redis client"):
        build_rate_limiter(settings)


def test_memory_backend_with_several_workers_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_RATE_LIMIT__BACKEND", "memory")
    monkeypatch.setenv("APP_SERVER__WORKERS", "4")

    with pytest.raises(SettingsError) as refused:
        load_settings(BaseServiceSettings)

    message = str(refused.value)
    assert "APP_RATE_LIMIT__BACKEND=redis" in message
    assert "APP_SERVER__WORKERS=1" in message


def test_redis_backend_with_several_workers_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_RATE_LIMIT__BACKEND", "redis")
    monkeypatch.setenv("APP_SERVER__WORKERS", "4")

    assert load_settings(BaseServiceSettings).server.workers == 4
