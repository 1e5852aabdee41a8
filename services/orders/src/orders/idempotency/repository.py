"""Every query on idempotency keys."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

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
    statement = _claim_statement(session.get_bind().dialect.name)
    return (await session.execute(statement, values)).first() is not None


@functools.cache
def _claim_statement(dialect_name: str) -> Insert:
    # A Core statement built once per dialect: it keeps its compiled form, and a Core
    # insert does not make the session flush first as an ORM-enabled one does.
    dialect = sqlite if dialect_name == "sqlite" else postgresql
    table = cast(Table, IdempotencyKey.__table__)
    statement: Insert = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=["owner_id", "key"])
        .returning(table.c.id)
    )
    return statement


async def delete_created_before(session: AsyncSession, *, cutoff: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(cast(CursorResult[Any], result).rowcount)
