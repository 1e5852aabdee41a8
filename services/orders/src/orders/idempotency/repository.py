"""Every query on idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from orders.idempotency.models import IdempotencyKey


async def find(session: AsyncSession, *, owner_id: str, key: str) -> IdempotencyKey | None:
    query = select(IdempotencyKey).where(
        IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key
    )
    return (await session.scalars(query)).one_or_none()


async def claim(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert the key's row unless (owner_id, key) is taken; True when this call inserted it.

    ``INSERT ... ON CONFLICT DO NOTHING``: a key another transaction holds but has not
    committed makes this wait for it (Postgres blocks on the index entry), as a plain
    INSERT would, and the answer is then whether that transaction committed.
    """
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    statement = (
        dialect.insert(IdempotencyKey)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["owner_id", "key"])
        .returning(IdempotencyKey.id)
    )
    return (await session.execute(statement)).first() is not None


async def delete_created_before(session: AsyncSession, *, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(cast(CursorResult[Any], result).rowcount)
