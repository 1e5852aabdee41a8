"""argon2id password hashing, off the event loop and bounded in memory.

Hashing is CPU- and memory-bound by design, so it runs in worker threads, at
most ``max_concurrent_hashes`` at once (each uses ``memory_cost_kib``). A login
for an unknown email verifies against a dummy hash, so the answer takes as long
as a wrong password and does not reveal which emails have accounts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import FastAPI

from users.settings import PasswordSettings

if TYPE_CHECKING:
    from chassis.builder import AppBuilder

T = TypeVar("T")


class Passwords:
    """Hash, verify and rehash passwords with the configured argon2id cost."""

    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost_kib,
            parallelism=settings.parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrent_hashes)
        self._dummy_hash: str | None = None

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        async with self._slots:
            return await asyncio.to_thread(function, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when `password` matches; a malformed stored hash never matches."""
        return await self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a failed verification, for logins of unknown emails."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._dummy_hash, password)


def setup_passwords(builder: AppBuilder, settings: PasswordSettings) -> None:
    """Resource ``passwords``: the hasher, with its dummy hash made at start-up."""

    @asynccontextmanager
    async def passwords(_app: FastAPI) -> AsyncIterator[Passwords]:
        hasher = Passwords(settings)
        # Made now so that the first unknown-email login is not faster than the rest.
        await hasher.verify_dummy("")
        yield hasher

    builder.add_resource("passwords", passwords)
