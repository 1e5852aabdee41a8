"""Every query on idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from orders.idempotency.models import IdempotencyKey


async def find(session: AsyncSession, *, owner_id: str, key: str) -> IdempotencyKey | None:
    query = select(IdempotencyKey).where(
        IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key
    )
    return (await session.scalars(query)).one_or_none()


def add(session: AsyncSession, record: IdempotencyKey) -> None:
    session.add(record)


async def delete_created_before(session: AsyncSession, *, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(cast(CursorResult[Any], result).rowcount)
