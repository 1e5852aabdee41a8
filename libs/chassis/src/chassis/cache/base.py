"""The `CacheStore` interface: bytes in, bytes out, with a TTL and a fill lock.

Callers serialise their own values, so any store can back any caller and a
backend switch is a settings change (``APP_CACHE__BACKEND=redis``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import ClassVar


class CacheStore(ABC):
    """An async key/value cache of bytes with optional expiry."""

    #: Label for metrics (``cache_lookups_total{store=...}``); a small fixed set.
    name: ClassVar[str]

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        """Store `value`; `ttl_seconds` None means the store's default TTL."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget `key` (no error when absent)."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """True when `key` holds an unexpired value."""

    @abstractmethod
    async def clear(self) -> None:
        """Forget every key of this store, and only those."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store can serve requests; never raises."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the store owns (a shared client is left to its owner)."""

    @abstractmethod
    def fill_lock(
        self, key: str, *, lock_timeout_seconds: float
    ) -> AbstractAsyncContextManager[None]:
        """Wait until this caller may compute `key`, or until `key` has a value.

        Waits at most `lock_timeout_seconds`, then lets the caller in anyway, so a
        holder that hangs or died cannot block everyone else forever.
        """


def check_ttl(ttl_seconds: float | None) -> None:
    if ttl_seconds is not None and ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
