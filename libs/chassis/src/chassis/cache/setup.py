"""Builder step: the ``cache`` resource (memory or Redis, by settings) and its readiness check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from chassis.cache.base import CacheStore
from chassis.cache.memory import MemoryCacheStore
from chassis.cache.redis import RedisCacheStore
from chassis.settings import BaseServiceSettings

if TYPE_CHECKING:
    from chassis.builder_protocol import Builder


def setup_cache(builder: Builder) -> None:
    """Register ``app.state.cache``; the Redis backend reuses ``app.state.redis``."""
    settings = builder.settings
    redis_backend = settings.cache.backend == "redis"
    if redis_backend and "redis" not in builder.steps:
        raise RuntimeError(
            "cache.backend=redis uses the shared Redis client: call with_redis() "
            "before with_cache()"
        )

    @asynccontextmanager
    async def cache(app: FastAPI) -> AsyncIterator[CacheStore]:
        store = create_cache_store(settings, app=app)
        try:
            yield store
        finally:
            await store.close()

    builder.add_resource("cache", cache)
    # An in-process cache cannot be down; only a shared one gates readiness.
    builder.readiness.add("cache", check_cache, critical=redis_backend)


def create_cache_store(settings: BaseServiceSettings, *, app: FastAPI) -> CacheStore:
    cache = settings.cache
    if cache.backend == "redis":
        # Services share one Redis: the service name keeps their caches apart.
        return RedisCacheStore(
            app.state.redis,
            prefix=f"{settings.service_name}:{cache.key_prefix}",
            default_ttl=cache.default_ttl_seconds,
        )
    return MemoryCacheStore(max_entries=cache.max_entries, default_ttl=cache.default_ttl_seconds)


async def check_cache(app: FastAPI) -> bool:
    store: CacheStore = app.state.cache
    return await store.ping()


async def get_cache(connection: HTTPConnection) -> CacheStore:
    store: CacheStore = connection.app.state.cache
    return store


CacheDep = Annotated[CacheStore, Depends(get_cache)]
