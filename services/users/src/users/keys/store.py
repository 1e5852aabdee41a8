"""The per-process key store: the signing key and the published keys, re-read periodically.

Lives on ``app.state.key_store``. Every ``signing.key_refresh_seconds`` it
re-reads the table, so a rotation made by ``users-rotate-keys`` (or a replica
started with a new secret) reaches every process. If the database cannot be
read, the last key ring keeps serving until the next attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from chassis.auth import JWKSLoader, SigningKey, render_jwks
from chassis.database import Database, utc_now
from users.keys.service import (
    KeyRing,
    ensure_generated_key,
    load_key_ring,
    prune_retired_keys,
    register_configured_key,
)
from users.settings import UsersSettings

if TYPE_CHECKING:
    from chassis.builder import AppBuilder

logger = structlog.get_logger("users.keys")


class KeyStore:
    """The key ring of this process; see the module docstring."""

    def __init__(
        self,
        database: Database,
        *,
        configured_key: SigningKey | None,
        publish_seconds: float,
        refresh_seconds: float,
        rsa_bits: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.configured_key = configured_key
        self.publish_seconds = publish_seconds
        self.refresh_seconds = refresh_seconds
        self.rsa_bits = rsa_bits
        self._clock = clock
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, database: Database, settings: UsersSettings) -> KeyStore:
        pem = settings.signing.private_key_pem
        configured = (
            SigningKey.from_private_pem(pem.get_secret_value())
            if pem is not None and pem.get_secret_value().strip()
            else None
        )
        return cls(
            database,
            configured_key=configured,
            publish_seconds=settings.retired_key_publish_seconds,
            refresh_seconds=settings.signing.key_refresh_seconds,
            rsa_bits=settings.signing.rsa_bits,
        )

    async def start(self) -> None:
        """Record the configured key, or make sure a generated one exists; load the ring."""
        try:
            await self._prepare()
        except IntegrityError:
            # Another replica starting at the same moment won the insert; use its key.
            await self._prepare()
        ring = await self.reload()
        logger.info(
            "signing_keys_loaded", active_kid=ring.active.kid, published=len(ring.published)
        )

    async def _prepare(self) -> None:
        now = utc_now()
        async with self.database.session() as session:
            await prune_retired_keys(session, now=now, publish_seconds=self.publish_seconds)
            if self.configured_key is not None:
                await register_configured_key(session, key=self.configured_key, now=now)
            else:
                await ensure_generated_key(session, now=now, bits=self.rsa_bits)

    async def reload(self) -> KeyRing:
        """Read the ring from the table now."""
        async with self._lock:
            known = self._ring.active if self._ring is not None else None
            async with self.database.session() as session:
                ring = await load_key_ring(
                    session,
                    now=utc_now(),
                    publish_seconds=self.publish_seconds,
                    configured=self.configured_key,
                    known=known,
                )
            if known is not None and known.kid != ring.active.kid:
                logger.info(
                    "signing_key_changed", previous_kid=known.kid, active_kid=ring.active.kid
                )
            self._ring = ring
            self._loaded_at = self._clock()
            return ring

    async def ring(self) -> KeyRing:
        """The current ring, re-read when older than the refresh interval."""
        ring = self._ring
        if ring is not None and self._clock() - self._loaded_at < self.refresh_seconds:
            return ring
        try:
            return await self.reload()
        except (SQLAlchemyError, OSError) as exc:
            if ring is None:
                raise
            # Signing goes on with the keys we have; the next call tries again.
            logger.warning("signing_keys_reload_failed", error=type(exc).__name__)
            self._loaded_at = self._clock()
            return ring

    async def signing_key(self) -> SigningKey:
        return (await self.ring()).active

    async def jwks(self) -> dict[str, Any]:
        """The JWKS document of the current ring."""
        return render_jwks((await self.ring()).published)

    async def load_jwks(self) -> dict[str, Any]:
        """The JWKS document read from the table now (for this service's own verifier)."""
        return render_jwks((await self.reload()).published)

    def status(self) -> dict[str, Any]:
        ring = self._ring
        if ring is None:
            raise RuntimeError("signing keys not loaded")
        return {
            "active_kid": ring.active.kid,
            "published": len(ring.published),
            "source": "secret" if self.configured_key is not None else "database",
        }


def key_loader(app: FastAPI) -> JWKSLoader:
    """For ``with_auth(key_loader=...)``: verify our own tokens against the key store."""
    store: KeyStore = app.state.key_store
    return store.load_jwks


def setup_key_store(builder: AppBuilder, settings: UsersSettings) -> None:
    """Resource ``key_store`` (after ``database``) and the critical readiness check."""

    @asynccontextmanager
    async def key_store(app: FastAPI) -> AsyncIterator[KeyStore]:
        store = KeyStore.from_settings(app.state.database, settings)
        await store.start()
        yield store

    async def check_signing_keys(app: FastAPI) -> dict[str, Any]:
        store: KeyStore = app.state.key_store
        await store.ring()
        return store.status()

    builder.add_resource("key_store", key_store)
    builder.readiness.add("signing_keys", check_signing_keys)
