"""The Redis backend against real Redis: same behaviour, atomic, and safe when Redis is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY
from redis.exceptions import ResponseError
from structlog.testing import capture_logs

from chassis.middleware.ratelimit import (
    RateLimitBackendError,
    RateLimitResult,
    RedisSlidingWindow,
)
from chassis.settings import RateLimitRule
from chassis.types import ASGIApp

LimitedApp = Callable[..., ASGIApp]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
async def dead_client() -> AsyncIterator[redis.Redis]:
    """Nothing listens on port 1: every call fails fast with a connection error."""
    connection = redis.Redis(
        host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2
    )
    try:
        yield connection
    finally:
        await connection.aclose()


async def test_limit_hits_are_admitted_then_refused_with_exact_retry_after(
    client: redis.Redis,
) -> None:
    backend = RedisSlidingWindow(client, key_prefix="rl-test")
    hits = [
        await backend.hit("k", limit=3, window_seconds=60, now=now) for now in (1000, 1010, 1020)
    ]
    refused = await backend.hit("k", limit=3, window_seconds=60, now=1030.5)

    assert [(h.allowed, h.remaining) for h in hits] == [(True, 2), (True, 1), (True, 0)]
    assert hits[2].reset_after_seconds == pytest.approx(40.0)
    assert refused == RateLimitResult(False, 3, 0, pytest.approx(29.5), pytest.approx(29.5))


async def test_the_window_slides_in_redis(client: redis.Redis) -> None:
    backend = RedisSlidingWindow(client, key_prefix="rl-test")
    for now in (1000, 1010, 1020):
        await backend.hit("k", limit=3, window_seconds=60, now=now)

    at_oldest_expiry = await backend.hit("k", limit=3, window_seconds=60, now=1060)
    refused = await backend.hit("k", limit=3, window_seconds=60, now=1065)

    assert at_oldest_expiry.allowed
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(5.0)


async def test_server_time_is_used_and_keys_expire_with_their_window(
    client: redis.Redis,
) -> None:
    backend = RedisSlidingWindow(client, key_prefix="rl-test")
    first = await backend.hit("k", limit=1, window_seconds=30)
    refused = await backend.hit("k", limit=1, window_seconds=30)

    assert first.allowed
    assert first.reset_after_seconds == pytest.approx(30.0)
    assert not refused.allowed
    assert 29.0 < refused.retry_after_seconds <= 30.0
    assert await client.keys("*") == [b"rl-test:k"]
    assert 29_000 < await client.pttl("rl-test:k") <= 30_000


async def test_concurrent_hits_admit_exactly_the_limit(client: redis.Redis) -> None:
    backend = RedisSlidingWindow(client, key_prefix="rl-test")
    results = await asyncio.gather(
        *(backend.hit("burst", limit=10, window_seconds=60) for _ in range(50))
    )

    assert sum(result.allowed for result in results) == 10
    assert await client.zcard("rl-test:burst") == 10


async def test_the_client_may_be_resolved_at_the_first_hit(client: redis.Redis) -> None:
    opened: list[redis.Redis] = []

    def provider() -> redis.Redis:
        opened.append(client)
        return client

    backend = RedisSlidingWindow(provider, key_prefix="rl-test")
    assert opened == []
    await backend.hit("k", limit=5, window_seconds=60)
    await backend.hit("k", limit=5, window_seconds=60)

    assert len(opened) == 1
    assert await client.zcard("rl-test:k") == 2


async def test_a_redis_error_that_is_not_an_outage_is_not_hidden(client: redis.Redis) -> None:
    await client.set("rl-test:k", "not a sorted set")
    backend = RedisSlidingWindow(client, key_prefix="rl-test")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await backend.hit("k", limit=5, window_seconds=60)


async def test_an_unreachable_redis_raises_backend_error(dead_client: redis.Redis) -> None:
    backend = RedisSlidingWindow(dead_client)

    with pytest.raises(RateLimitBackendError, match="unavailable"):
        await backend.hit("k", limit=5, window_seconds=60)


async def test_middleware_over_redis_refuses_with_headers_and_retry_after(
    client: redis.Redis, limited_app: LimitedApp, make_client: Any
) -> None:
    login = RateLimitRule(path_prefix="/auth/login", requests=1, window_seconds=120, by_ip=True)
    app = limited_app(
        RedisSlidingWindow(client, key_prefix="rl-test"),
        default_limit=2,
        default_window_seconds=60,
        rules=[login],
    )
    async with make_client(app) as http:
        items = [await http.get("/items", headers={"X-Subject": "alice"}) for _ in range(3)]
        other_subject = await http.get("/items", headers={"X-Subject": "bob"})
        logins = [
            await http.post("/auth/login", headers={"X-Subject": name}) for name in ("a", "b")
        ]

    assert [r.status_code for r in items] == [200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in items] == ["1", "0", "0"]
    assert items[2].headers["content-type"] == "application/problem+json"
    assert items[2].json()["status"] == 429
    assert 59 <= int(items[2].headers["retry-after"]) <= 60
    assert items[2].headers["ratelimit-reset"] == items[2].headers["retry-after"]
    assert other_subject.status_code == 200
    assert [r.status_code for r in logins] == [200, 429]
    assert 119 <= int(logins[1].headers["retry-after"]) <= 120


def backend_errors(service: str, policy: str) -> float:
    value = REGISTRY.get_sample_value(
        "rate_limit_backend_errors_total", {"service": service, "policy": policy}
    )
    return value or 0.0


async def test_unreachable_redis_fails_open_and_warns_once(
    dead_client: redis.Redis, limited_app: LimitedApp, make_client: Any
) -> None:
    service = "rl-fail-open-test"
    app = limited_app(
        RedisSlidingWindow(dead_client), default_limit=1, fail_open=True, service=service
    )
    with capture_logs() as logs:
        async with make_client(app) as http:
            answers = [await http.get("/items") for _ in range(4)]

    assert [r.status_code for r in answers] == [200] * 4
    assert all("ratelimit-limit" not in r.headers for r in answers)
    warnings = [log for log in logs if log["event"] == "rate_limit_backend_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["policy"] == "open"
    assert backend_errors(service, "open") == 4


async def test_the_backend_warning_is_repeated_after_its_interval(
    dead_client: redis.Redis, limited_app: LimitedApp, make_client: Any
) -> None:
    app = limited_app(RedisSlidingWindow(dead_client), warning_interval_seconds=0)
    with capture_logs() as logs:
        async with make_client(app) as http:
            for _ in range(3):
                await http.get("/items")

    warnings = [log for log in logs if log["event"] == "rate_limit_backend_unavailable"]
    assert len(warnings) == 3


async def test_unreachable_redis_fails_closed_with_503_problem(
    dead_client: redis.Redis, limited_app: LimitedApp, make_client: Any
) -> None:
    service = "rl-fail-closed-test"
    app = limited_app(RedisSlidingWindow(dead_client), fail_open=False, service=service)
    async with make_client(app) as http:
        answer = await http.get("/items")

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["status"] == 503
    assert backend_errors(service, "closed") == 1
