"""One pooled Redis client per process, with explicit socket timeouts and no hidden retries.

The client is created in the lifespan (``app.state.redis``), shared by the cache,
rate limiter and event bus, and closed with its pool at shutdown. Commands are
never retried here: each caller knows whether its command is safe to repeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.requests import HTTPConnection

from chassis.settings import BaseServiceSettings, RedisSettings

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder


def create_redis(settings: RedisSettings, *, client_name: str | None = None) -> Redis:
    """A client over a bounded pool; a caller waits at most the socket timeout for a slot."""
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout_seconds,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.connect_timeout_seconds,
        health_check_interval=settings.health_check_interval_seconds,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
        client_name=client_name,
    )
    return Redis.from_pool(pool)


def setup_redis(builder: Builder, *, critical: bool = True) -> None:
    """Builder step: resource ``redis`` and the readiness check ``redis`` (PING).

    The check is critical unless the service keeps serving without Redis
    (`critical=False`): then readiness still names Redis when it is down, but
    does not take every replica out of the load balancer at once.
    """
    settings = builder.settings

    @asynccontextmanager
    async def redis_client(_app: FastAPI) -> AsyncIterator[Redis]:
        # CLIENT SETNAME refuses spaces; the name shows in CLIENT LIST for debugging.
        name = "-".join(settings.service_name.split()) or None
        client = create_redis(settings.redis, client_name=name)
        try:
            yield client
        finally:
            await client.aclose()

    builder.add_resource("redis", redis_client)
    builder.readiness.add("redis", check_redis, critical=critical)


def rate_limits_need_redis(settings: BaseServiceSettings) -> bool:
    """Whether requests fail without Redis: Redis-backed rate limits that fail closed.

    A service whose other uses of Redis degrade (events, an outbox relay) passes
    this as `critical` to the redis step.
    """
    limits = settings.rate_limit
    return limits.enabled and limits.backend == "redis" and not limits.fail_open


async def check_redis(app: FastAPI) -> None:
    client: Redis = app.state.redis
    await client.ping()


async def get_redis(connection: HTTPConnection) -> Redis:
    client: Redis = connection.app.state.redis
    return client


RedisDep = Annotated[Redis, Depends(get_redis)]
