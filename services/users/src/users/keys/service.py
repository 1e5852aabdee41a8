"""Signing-key life cycle: register the configured key, generate, rotate, prune, load.

Two modes. With ``signing.private_key_pem`` (required in production) that key
signs and the table only records its public part, so a replica started with a
new secret retires the old key everywhere. Without it a key is generated and
kept, private part included, in the table, shared by every replica and
replaced by ``users-rotate-keys``. Either way a retired key stays published
for `UsersSettings.retired_key_publish_seconds`, then is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.auth import SigningKey, generate_rsa_key
from users.keys import repository
from users.keys.models import SigningKeyRecord


class NoActiveKeyError(RuntimeError):
    """The table holds no active key with a private part (start-up makes one)."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The key that signs now and every public key verifiers should accept."""

    active: SigningKey
    published: tuple[Mapping[str, Any], ...]


def _record(key: SigningKey, *, now: datetime, with_private: bool) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=key.kid,
        algorithm=key.algorithm,
        private_pem=key.to_private_pem().decode() if with_private else None,
        public_jwk=key.public_jwk(),
        created_at=now,
        retired_at=None,
    )


async def register_configured_key(session: AsyncSession, *, key: SigningKey, now: datetime) -> None:
    """Make the key from the secret the active one; the others retire."""
    await repository.retire_active_keys(session, now=now, keep_kid=key.kid)
    record = await repository.get_key(session, key.kid)
    if record is None:
        await repository.add_key(session, _record(key, now=now, with_private=False))
    elif record.retired_at is not None:
        # Back to an earlier secret (a rolled-back deploy): the key is active again.
        record.retired_at = None
        await session.flush()


async def _generate(bits: int) -> SigningKey:
    # Up to a second of CPU: not on the event loop.
    return await asyncio.to_thread(generate_rsa_key, None, bits)


async def rotate_signing_key(session: AsyncSession, *, now: datetime, bits: int) -> SigningKey:
    """Generate a key, make it the active one and retire the previous one."""
    key = await _generate(bits)
    await repository.retire_active_keys(session, now=now)
    await repository.add_key(session, _record(key, now=now, with_private=True))
    return key


async def ensure_generated_key(session: AsyncSession, *, now: datetime, bits: int) -> None:
    """Make sure an active key with a private part exists, generating one if not.

    Only keys that cannot sign (their private part was in a secret) are retired:
    if another replica committed a generated key meanwhile, our insert hits the
    one-active-key index and the caller retries, finding that key.
    """
    active = await repository.list_active_keys(session)
    if any(record.private_pem for record in active):
        return
    key = await _generate(bits)
    await repository.retire_active_keys(session, now=now, public_only=True)
    await repository.add_key(session, _record(key, now=now, with_private=True))


async def prune_retired_keys(
    session: AsyncSession, *, now: datetime, publish_seconds: float
) -> None:
    """Delete keys retired long enough ago that no token they signed is still valid."""
    await repository.delete_keys_retired_before(session, now - timedelta(seconds=publish_seconds))


async def load_key_ring(
    session: AsyncSession,
    *,
    now: datetime,
    publish_seconds: float,
    configured: SigningKey | None,
    known: SigningKey | None = None,
) -> KeyRing:
    """The active key (the configured one, else the table's) and the keys to publish.

    `known` is the key loaded last time: reused when still active, which spares
    parsing its PEM again.
    """
    records = await repository.list_published_keys(
        session, retired_after=now - timedelta(seconds=publish_seconds)
    )
    active = configured
    if active is None:
        record = next(
            (item for item in records if item.retired_at is None and item.private_pem), None
        )
        if record is None or record.private_pem is None:
            raise NoActiveKeyError("no active signing key; restart the service to create one")
        if known is not None and known.kid == record.kid:
            active = known
        else:
            active = SigningKey.from_private_pem(record.private_pem, record.kid)
    published = [active.public_jwk()]
    published.extend(record.public_jwk for record in records if record.kid != active.kid)
    return KeyRing(active=active, published=tuple(published))
