"""Queries on ``signing_keys``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from users.keys.models import SigningKeyRecord


async def get_key(session: AsyncSession, kid: str) -> SigningKeyRecord | None:
    return await session.get(SigningKeyRecord, kid)


async def list_active_keys(session: AsyncSession) -> Sequence[SigningKeyRecord]:
    """Keys not retired, newest first."""
    rows = await session.scalars(
        select(SigningKeyRecord)
        .where(SigningKeyRecord.retired_at.is_(None))
        .order_by(SigningKeyRecord.created_at.desc())
    )
    return rows.all()


async def list_published_keys(
    session: AsyncSession, *, retired_after: datetime
) -> Sequence[SigningKeyRecord]:
    """The active keys and those retired after `retired_after`, newest first."""
    rows = await session.scalars(
        select(SigningKeyRecord)
        .where(
            or_(
                SigningKeyRecord.retired_at.is_(None),
                SigningKeyRecord.retired_at > retired_after,
            )
        )
        .order_by(SigningKeyRecord.created_at.desc())
    )
    return rows.all()


async def retire_active_keys(
    session: AsyncSession,
    *,
    now: datetime,
    keep_kid: str | None = None,
    public_only: bool = False,
) -> None:
    """Retire every active key but `keep_kid` (only those without a private part if
    `public_only`), dropping its private part."""
    statement = (
        update(SigningKeyRecord)
        .where(SigningKeyRecord.retired_at.is_(None))
        .values(retired_at=now, private_pem=None)
    )
    if keep_kid is not None:
        statement = statement.where(SigningKeyRecord.kid != keep_kid)
    if public_only:
        statement = statement.where(SigningKeyRecord.private_pem.is_(None))
    await session.execute(statement)


async def delete_keys_retired_before(session: AsyncSession, cutoff: datetime) -> None:
    await session.execute(delete(SigningKeyRecord).where(SigningKeyRecord.retired_at <= cutoff))


async def add_key(session: AsyncSession, record: SigningKeyRecord) -> None:
    session.add(record)
    await session.flush()
