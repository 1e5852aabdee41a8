"""Queries on ``users``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from users.user.models import User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    user: User | None = await session.scalar(select(User).where(User.email == email))
    return user


async def add_user(session: AsyncSession, user: User) -> User:
    session.add(user)
    await session.flush()
    return user


async def list_users_page(
    session: AsyncSession, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[User]:
    """Up to `limit` users in (created_at, id) order, starting after `after`."""
    statement = select(User).order_by(User.created_at, User.id).limit(limit)
    if after is not None:
        created_at, user_id = after
        statement = statement.where(
            or_(
                User.created_at > created_at,
                and_(User.created_at == created_at, User.id > user_id),
            )
        )
    rows = await session.scalars(statement)
    return rows.all()
