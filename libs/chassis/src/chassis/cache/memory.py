"""An in-process cache: TTL expiry and least-recently-used eviction, bounded in size.

Per process only: each worker has its own copy. Fine for data that may be a
little stale per worker; use the Redis store for anything shared.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import ClassVar

from chassis.cache.base import CacheStore, check_ttl


class MemoryCacheStore(CacheStore):
    name: ClassVar[str] = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        default_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        check_ttl(default_ttl)
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self._clock = clock
        # key -> (value, expires_at or None); order is least recently used first.
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        # key -> (lock, callers using it); dropped when the last caller leaves.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._live_entry(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        check_ttl(ttl_seconds)
        ttl = ttl_seconds if ttl_seconds is not None else self.default_ttl
        expires_at = self._clock() + ttl if ttl is not None else None
        self._entries[key] = (bytes(value), expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def exists(self, key: str) -> bool:
        return self._live_entry(key) is not None

    async def clear(self) -> None:
        self._entries.clear()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()

    @asynccontextmanager
    async def fill_lock(self, key: str, *, lock_timeout_seconds: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        acquired = False
        try:
            try:
                async with asyncio.timeout(lock_timeout_seconds):
                    await lock.acquire()
                acquired = True
            except TimeoutError:
                pass  # the holder is stuck: go ahead without the lock
            yield
        finally:
            if acquired:
                lock.release()
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _live_entry(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at = entry[1]
        if expires_at is not None and self._clock() >= expires_at:
            del self._entries[key]
            return None
        return entry
