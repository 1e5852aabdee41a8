"""get_or_set computes a missing value once however many callers miss it together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from chassis.cache import CacheStore, MemoryCacheStore, RedisCacheStore, get_or_set


def counting_producer(
    value: bytes = b"computed", *, delay: float = 0.02
) -> tuple[Callable[[], Awaitable[bytes]], list[int]]:
    calls: list[int] = []

    async def produce() -> bytes:
        calls.append(1)
        await asyncio.sleep(delay)  # long enough for every caller to miss the cache
        return value

    return produce, calls


def lookups(store: str, result: str) -> float:
    labels = {"store": store, "result": result}
    return REGISTRY.get_sample_value("cache_lookups_total", labels) or 0.0


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_client: redis.Redis) -> CacheStore:
    if request.param == "memory":
        return MemoryCacheStore()
    return RedisCacheStore(redis_client, prefix="lookup")


async def test_fifty_concurrent_misses_call_the_producer_once(store: CacheStore) -> None:
    produce, calls = counting_producer()
    hits, misses = lookups(store.name, "hit"), lookups(store.name, "miss")
    results = await asyncio.gather(*(get_or_set(store, "hot", produce) for _ in range(50)))
    assert results == [b"computed"] * 50
    assert len(calls) == 1
    assert await store.get("hot") == b"computed"
    assert (lookups(store.name, "hit") - hits, lookups(store.name, "miss") - misses) == (49, 1)


async def test_a_cached_value_is_served_without_the_producer(store: CacheStore) -> None:
    await store.set("warm", b"cached")
    produce, calls = counting_producer()
    assert await get_or_set(store, "warm", produce) == b"cached"
    assert calls == []


async def test_the_value_is_stored_with_the_given_ttl(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="lookup")
    produce, _ = counting_producer(delay=0)
    await get_or_set(store, "k", produce, ttl_seconds=30)
    assert 29_000 < await redis_client.pttl("lookup:k") <= 30_000


async def test_a_failing_producer_does_not_keep_the_lock(store: CacheStore) -> None:
    async def fail() -> bytes:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError, match="backend down"):
        await get_or_set(store, "k", fail, lock_timeout_seconds=30)
    produce, calls = counting_producer(delay=0)
    async with asyncio.timeout(5):  # would wait 30 s if the lock had been kept
        assert await get_or_set(store, "k", produce, lock_timeout_seconds=30) == b"computed"
    assert len(calls) == 1


async def test_a_hung_holder_delays_others_only_until_the_lock_timeout() -> None:
    store = MemoryCacheStore()
    never = asyncio.Event()

    async def hang() -> bytes:
        await never.wait()
        return b"never"

    holder = asyncio.create_task(get_or_set(store, "k", hang))
    await asyncio.sleep(0)  # let the holder take the lock
    produce, calls = counting_producer(b"mine", delay=0)
    async with asyncio.timeout(5):
        assert await get_or_set(store, "k", produce, lock_timeout_seconds=0.05) == b"mine"
    assert len(calls) == 1
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_a_lock_left_by_a_dead_process_is_waited_out_in_bounded_time(
    redis_client: redis.Redis,
) -> None:
    store = RedisCacheStore(redis_client, prefix="lookup")
    await redis_client.set("lookup.lock:k", b"dead-token", px=60_000)
    produce, calls = counting_producer(b"mine", delay=0)
    async with asyncio.timeout(5):
        assert await get_or_set(store, "k", produce, lock_timeout_seconds=0.1) == b"mine"
    assert len(calls) == 1
    # Not ours: the dead holder's lock is left to expire, not deleted.
    assert await redis_client.get("lookup.lock:k") == b"dead-token"


async def test_an_expired_lock_is_taken_over_by_one_waiter(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="lookup")
    await redis_client.set("lookup.lock:k", b"dead-token", px=100)
    produce, calls = counting_producer(delay=0.02)
    results = await asyncio.gather(
        *(get_or_set(store, "k", produce, lock_timeout_seconds=5) for _ in range(10))
    )
    assert results == [b"computed"] * 10
    assert len(calls) == 1
    assert await redis_client.exists("lookup.lock:k") == 0


async def test_a_non_positive_lock_timeout_is_refused() -> None:
    produce, _ = counting_producer()
    with pytest.raises(ValueError, match="lock_timeout_seconds"):
        await get_or_set(MemoryCacheStore(), "k", produce, lock_timeout_seconds=0)
