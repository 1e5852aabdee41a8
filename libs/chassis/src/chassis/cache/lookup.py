"""`get_or_set`: read through the cache, computing a missing value once, not once per caller.

Without it, an expired hot key sends every concurrent request to the database
at the same moment (a cache stampede). Here one caller computes while the
others wait for its value, each for a bounded time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chassis.cache.base import CacheStore
from chassis.metrics.registry import CACHE_LOOKUPS


async def get_or_set(
    store: CacheStore,
    key: str,
    producer: Callable[[], Awaitable[bytes]],
    *,
    ttl_seconds: float | None = None,
    lock_timeout_seconds: float = 5.0,
) -> bytes:
    """The cached value of `key`, or `producer()`'s result, stored for `ttl_seconds`.

    Concurrent callers missing the same key wait up to `lock_timeout_seconds`
    for the one computing it, then compute it themselves.
    """
    if lock_timeout_seconds <= 0:
        raise ValueError("lock_timeout_seconds must be positive")
    value = await store.get(key)
    if value is None:
        async with store.fill_lock(key, lock_timeout_seconds=lock_timeout_seconds):
            # Whoever held the lock before us has probably stored it by now.
            value = await store.get(key)
            if value is None:
                CACHE_LOOKUPS.labels(store.name, "miss").inc()
                value = await producer()
                await store.set(key, value, ttl_seconds)
                return value
    CACHE_LOOKUPS.labels(store.name, "hit").inc()
    return value
