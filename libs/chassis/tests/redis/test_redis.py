"""The shared Redis client: bounded timeouts, no hidden retries, readiness, closed at shutdown."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from fastapi import APIRouter
from redis.exceptions import TimeoutError as RedisTimeoutError

from chassis.builder import AppBuilder
from chassis.redis import RedisDep, create_redis
from chassis.settings import BaseServiceSettings, RedisSettings


def redis_app(url: str, *, service: str = "redistest", **options: Any) -> Any:
    router = APIRouter()

    @router.put("/keys/{key}")
    async def put_key(key: str, client: RedisDep) -> dict[str, str]:
        await client.set(key, "stored")
        return {"key": key}

    settings = BaseServiceSettings(service_name=service, redis={"url": url, **options})
    return AppBuilder(settings).without_middleware().with_redis().with_routes(router).build()


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server that accepts connections and never answers; yields (port, accept log)."""
    accepted: list[int] = []
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), accepted
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_readiness_pings_redis(redis_url: str, make_client: Callable[..., Any]) -> None:
    async with make_client(redis_app(redis_url)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["status"] == "ok"


async def test_readiness_names_redis_when_it_is_down(
    closed_port: int, make_client: Callable[..., Any]
) -> None:
    app = redis_app(f"redis://127.0.0.1:{closed_port}/0", connect_timeout_seconds=0.2)
    async with make_client(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["redis"]


async def test_a_service_that_degrades_without_redis_stays_ready_and_names_it(
    closed_port: int, make_client: Callable[..., Any]
) -> None:
    settings = BaseServiceSettings(
        redis={"url": f"redis://127.0.0.1:{closed_port}/0", "connect_timeout_seconds": 0.2}
    )
    app = AppBuilder(settings).without_middleware().with_redis(critical=False).build()
    async with make_client(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["status"] == "failed"
    assert response.json()["checks"]["redis"]["critical"] is False


async def test_handlers_get_the_shared_client_with_bytes_values(
    redis_url: str, make_client: Callable[..., Any]
) -> None:
    async with make_client(redis_app(redis_url)) as client:
        response = await client.put("/keys/greeting")
    assert response.status_code == 200
    check = redis.Redis.from_url(redis_url)
    try:
        assert await check.get("greeting") == b"stored"
    finally:
        await check.aclose()


async def test_connections_are_closed_at_shutdown(
    redis_url: str, make_client: Callable[..., Any]
) -> None:
    service = f"closing-{uuid.uuid4().hex[:8]}"
    observer = redis.Redis.from_url(redis_url)

    async def named_connections() -> int:
        clients = await observer.client_list()
        return sum(1 for entry in clients if entry.get("name") == service)

    try:
        async with make_client(redis_app(redis_url, service=service)) as client:
            await client.put("/keys/a")
            during = await named_connections()
        after = await named_connections()
    finally:
        await observer.aclose()
    assert (during, after) == (1, 0)


async def test_a_silent_server_fails_after_the_socket_timeout_without_retrying(
    silent_server: tuple[int, list[int]],
) -> None:
    port, accepted = silent_server
    client = create_redis(
        RedisSettings(url=f"redis://127.0.0.1:{port}/0", socket_timeout_seconds=0.2)
    )
    started = time.monotonic()
    try:
        with pytest.raises(RedisTimeoutError):
            await client.ping()
    finally:
        await client.aclose()
    assert time.monotonic() - started < 2
    assert len(accepted) == 1


async def test_the_pool_is_bounded(redis_url: str) -> None:
    client = create_redis(
        RedisSettings(url=redis_url, max_connections=1, socket_timeout_seconds=0.2)
    )
    try:
        async with client.pipeline(transaction=True) as holder:
            # A pipeline in WATCH mode keeps its connection until reset.
            await holder.watch("guarded")
            with pytest.raises(redis.ConnectionError, match="No connection available"):
                await client.ping()
        assert await client.ping() is True
    finally:
        await client.aclose()
