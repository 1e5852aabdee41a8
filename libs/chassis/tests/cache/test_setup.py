"""The cache builder step picks the backend from settings and reports it in readiness."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as redis
from fastapi import APIRouter

from chassis.builder import AppBuilder
from chassis.cache import CacheDep, MemoryCacheStore, RedisCacheStore, get_or_set
from chassis.settings import BaseServiceSettings


def cache_app(settings: BaseServiceSettings, *, with_redis: bool) -> Any:
    router = APIRouter()

    @router.get("/greeting")
    async def greeting(cache: CacheDep) -> dict[str, str]:
        async def produce() -> bytes:
            return b"hello"

        return {"greeting": (await get_or_set(cache, "greeting", produce)).decode()}

    builder = AppBuilder(settings).without_middleware()
    if with_redis:
        builder.with_redis()
    return builder.with_cache().with_routes(router).build()


async def test_memory_backend_is_the_default_and_never_gates_readiness(
    make_client: Callable[..., Any],
) -> None:
    app = cache_app(BaseServiceSettings(service_name="cached"), with_redis=False)
    async with make_client(app) as client:
        greeting = await client.get("/greeting")
        ready = await client.get("/health/ready")
        store = app.state.cache
        assert await store.get("greeting") == b"hello"
    assert isinstance(store, MemoryCacheStore)
    assert greeting.json() == {"greeting": "hello"}
    assert ready.json()["checks"]["cache"] == {
        "status": "ok",
        "latency_ms": ready.json()["checks"]["cache"]["latency_ms"],
        "critical": False,
    }
    assert len(store) == 0  # closed at shutdown


async def test_redis_backend_shares_the_client_and_prefixes_by_service(
    redis_url: str, make_client: Callable[..., Any]
) -> None:
    settings = BaseServiceSettings(
        service_name="cached",
        redis={"url": redis_url},
        cache={"backend": "redis", "default_ttl_seconds": 30},
    )
    app = cache_app(settings, with_redis=True)
    async with make_client(app) as client:
        greeting = await client.get("/greeting")
        ready = await client.get("/health/ready")
        assert app.state.cache.client is app.state.redis
    assert isinstance(app.state.cache, RedisCacheStore)
    assert greeting.json() == {"greeting": "hello"}
    assert ready.json()["checks"]["cache"]["status"] == "ok"
    check = redis.Redis.from_url(redis_url)
    try:
        assert await check.get("cached:cache:greeting") == b"hello"
        assert 29_000 < await check.pttl("cached:cache:greeting") <= 30_000
    finally:
        await check.aclose()


async def test_an_unreachable_redis_cache_fails_readiness(
    make_client: Callable[..., Any],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = BaseServiceSettings(
        service_name="cached",
        redis={"url": f"redis://127.0.0.1:{port}/0", "connect_timeout_seconds": 0.2},
        cache={"backend": "redis"},
    )
    async with make_client(cache_app(settings, with_redis=True)) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert sorted(ready.json()["failed"]) == ["cache", "redis"]


def test_redis_backend_without_the_redis_step_is_refused_at_build_time() -> None:
    settings = BaseServiceSettings(cache={"backend": "redis"})
    with pytest.raises(RuntimeError, match=r"with_redis\(\) before with_cache\(\)"):
        cache_app(settings, with_redis=False)
