"""The in-process store: TTL expiry on an injected clock, LRU eviction, bounded size."""

from __future__ import annotations

import pytest

from chassis.cache import MemoryCacheStore
from chassis.testing.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_values_round_trip_as_bytes(clock: ManualClock) -> None:
    store = MemoryCacheStore(clock=clock)
    await store.set("k", b"\x00value")
    assert await store.get("k") == b"\x00value"
    assert await store.exists("k")
    await store.delete("k")
    await store.delete("never-set")
    assert await store.get("k") is None
    assert not await store.exists("k")


async def test_entries_expire_after_their_ttl(clock: ManualClock) -> None:
    store = MemoryCacheStore(default_ttl=60, clock=clock)
    await store.set("default", b"1")
    await store.set("short", b"2", ttl_seconds=5)
    clock.advance(4.9)
    assert await store.get("short") == b"2"
    clock.advance(0.1)
    assert await store.get("short") is None
    assert await store.exists("default")
    clock.advance(55)
    assert not await store.exists("default")
    assert len(store) == 0


async def test_entries_without_ttl_never_expire(clock: ManualClock) -> None:
    store = MemoryCacheStore(clock=clock)
    await store.set("k", b"v")
    clock.advance(10**9)
    assert await store.get("k") == b"v"


async def test_least_recently_used_entry_is_evicted_at_the_bound(clock: ManualClock) -> None:
    store = MemoryCacheStore(max_entries=2, clock=clock)
    await store.set("a", b"1")
    await store.set("b", b"2")
    await store.get("a")  # "b" is now the least recently used
    await store.set("c", b"3")
    assert [await store.get(key) for key in ("a", "b", "c")] == [b"1", None, b"3"]
    assert len(store) == 2


async def test_overwriting_refreshes_value_and_ttl(clock: ManualClock) -> None:
    store = MemoryCacheStore(clock=clock)
    await store.set("k", b"old", ttl_seconds=1)
    await store.set("k", b"new", ttl_seconds=10)
    clock.advance(5)
    assert await store.get("k") == b"new"


async def test_clear_ping_and_close(clock: ManualClock) -> None:
    store = MemoryCacheStore(clock=clock)
    await store.set("a", b"1")
    await store.clear()
    assert await store.get("a") is None
    assert await store.ping() is True
    await store.set("b", b"2")
    await store.close()
    assert len(store) == 0


@pytest.mark.parametrize("ttl", [0, -1])
async def test_non_positive_ttls_are_refused(ttl: float, clock: ManualClock) -> None:
    store = MemoryCacheStore(clock=clock)
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        await store.set("k", b"v", ttl_seconds=ttl)
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        MemoryCacheStore(default_ttl=ttl)


def test_a_store_must_hold_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCacheStore(max_entries=0)
