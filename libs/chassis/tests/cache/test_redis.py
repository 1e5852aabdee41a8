"""The Redis store: prefixed keys, millisecond TTLs, and a clear that touches only its prefix."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as redis

from chassis.cache import RedisCacheStore


async def test_values_round_trip_under_the_prefix(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="svc:cache")
    await store.set("k", b"\x00value")
    assert await store.get("k") == b"\x00value"
    assert await redis_client.get("svc:cache:k") == b"\x00value"
    assert await store.exists("k")
    await store.delete("k")
    await store.delete("never-set")
    assert await store.get("k") is None
    assert not await store.exists("k")


async def test_entries_expire_after_their_ttl(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="c", default_ttl=60)
    await store.set("default", b"1")
    await store.set("short", b"2", ttl_seconds=0.05)
    await store.set("forever", b"3")
    assert 59_000 < await redis_client.pttl("c:default") <= 60_000
    assert 0 < await redis_client.pttl("c:short") <= 50
    await asyncio.sleep(0.06)
    assert await store.get("short") is None
    assert await store.get("default") == b"1"


async def test_entries_without_ttl_do_not_expire(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="c")
    await store.set("k", b"v")
    assert await redis_client.pttl("c:k") == -1


async def test_clear_removes_only_its_own_prefix(redis_client: redis.Redis) -> None:
    mine = RedisCacheStore(redis_client, prefix="a*b")
    other = RedisCacheStore(redis_client, prefix="other")
    await redis_client.set("axxb:k", b"glob lookalike")
    await redis_client.set("a*bc:k", b"longer prefix")
    await redis_client.set("unrelated", b"x")
    async with redis_client.pipeline(transaction=False) as pipe:
        for index in range(1200):  # more than one SCAN/UNLINK batch
            pipe.set(f"a*b:k{index}", b"v")
        await pipe.execute()
    await redis_client.set("a*b.lock:k0", b"token")
    await other.set("k0", b"kept")
    await mine.clear()
    remaining = sorted(key.decode() for key in await redis_client.keys("*"))
    assert remaining == ["a*bc:k", "axxb:k", "other:k0", "unrelated"]


async def test_ping_reports_reachability(redis_client: redis.Redis) -> None:
    assert await RedisCacheStore(redis_client, prefix="c").ping() is True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        assert await RedisCacheStore(down, prefix="c").ping() is False
    finally:
        await down.aclose()


async def test_close_leaves_the_shared_client_usable(redis_client: redis.Redis) -> None:
    await RedisCacheStore(redis_client, prefix="c").close()
    assert await redis_client.ping() is True


def test_an_empty_prefix_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RedisCacheStore(redis_client, prefix="")


async def test_non_positive_ttls_are_refused(redis_client: redis.Redis) -> None:
    store = RedisCacheStore(redis_client, prefix="c")
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        await store.set("k", b"v", ttl_seconds=0)
