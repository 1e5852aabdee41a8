"""A cache in Redis, shared by every worker and replica of a service.

Keys live under ``<prefix>:``, and fill locks under ``<prefix>.lock:`` so that
no cache key can collide with a lock; `clear` removes exactly those two
namespaces with SCAN, never FLUSHDB (the database is shared).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chassis.cache.base import CacheStore, check_ttl

# Delete the lock only if we still own it: it may have expired and been taken.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_SCAN_BATCH = 500
_POLL_INITIAL_SECONDS = 0.005
_POLL_MAX_SECONDS = 0.1


class RedisCacheStore(CacheStore):
    name: ClassVar[str] = "redis"

    def __init__(
        self, client: Redis, *, prefix: str = "cache", default_ttl: float | None = None
    ) -> None:
        if not prefix:
            raise ValueError("a Redis cache needs a non-empty prefix")
        check_ttl(default_ttl)
        self.client = client
        self.prefix = prefix
        self.default_ttl = default_ttl
        self._release = client.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}.lock:{key}"

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self._key(key))
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        check_ttl(ttl_seconds)
        ttl = ttl_seconds if ttl_seconds is not None else self.default_ttl
        px = _milliseconds(ttl) if ttl is not None else None
        await self.client.set(self._key(key), value, px=px)

    async def delete(self, key: str) -> None:
        await self.client.delete(self._key(key))

    async def exists(self, key: str) -> bool:
        return bool(await self.client.exists(self._key(key)))

    async def clear(self) -> None:
        for pattern in (f"{_glob_escape(self.prefix)}:*", f"{_glob_escape(self.prefix)}.lock:*"):
            batch: list[bytes] = []
            async for found in self.client.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(found)
                if len(batch) >= _SCAN_BATCH:
                    await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                await self.client.unlink(*batch)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Nothing to do: the client belongs to the ``redis`` resource."""

    @asynccontextmanager
    async def fill_lock(self, key: str, *, lock_timeout_seconds: float) -> AsyncIterator[None]:
        lock_key = self._lock_key(key)
        token = secrets.token_hex(16)
        # The lock expires by itself, so a holder that died frees it in bounded time.
        lock_ms = _milliseconds(lock_timeout_seconds)
        owned = bool(await self.client.set(lock_key, token, nx=True, px=lock_ms))
        if not owned:
            owned = await self._wait(key, lock_key, token, lock_timeout_seconds)
        try:
            yield
        finally:
            if owned:
                await self._release(keys=[lock_key], args=[token])

    async def _wait(self, key: str, lock_key: str, token: str, wait_seconds: float) -> bool:
        """Poll until the value appears or we take the lock; True when we own it."""
        deadline = time.monotonic() + wait_seconds
        delay = _POLL_INITIAL_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX_SECONDS)
            if await self.client.exists(self._key(key)):
                return False
            if await self.client.set(lock_key, token, nx=True, px=_milliseconds(wait_seconds)):
                return True
        return False


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
