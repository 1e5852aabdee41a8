"""Every query on orders and their items."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from contracts.orders import OrderRead, OrderStatus
from orders.order.models import Order, OrderItemRow
from orders.pagination import Cursor

# Built once: each keeps its compiled form, so an insert costs its parameters only.
_INSERT_ORDER = insert(cast(Table, Order.__table__))
_INSERT_ITEMS = insert(cast(Table, OrderItemRow.__table__))


def _with_items() -> Select[Order]:
    return select(Order).options(selectinload(Order.items))


async def insert_order(session: AsyncSession, order: OrderRead) -> None:
    """Write a new order and its items now: two Core INSERTs, no ORM objects to flush."""
    order_id = uuid.UUID(order.id)
    await session.execute(
        _INSERT_ORDER,
        {
            "id": order_id,
            "owner_id": order.owner_id,
            "status": order.status.value,
            "status_reason": order.status_reason,
            "currency": order.currency,
            "amount_minor": order.amount_minor,
            "version": order.version,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        },
    )
    await session.execute(
        _INSERT_ITEMS,
        [
            {
                "order_id": order_id,
                "position": position,
                "sku": item.sku,
                "quantity": item.quantity,
                "unit_price_minor": item.unit_price_minor,
            }
            for position, item in enumerate(order.items)
        ],
    )


async def get(
    session: AsyncSession,
    order_id: uuid.UUID,
    *,
    owner_id: str | None = None,
    for_update: bool = False,
) -> Order | None:
    """The order with its items; only `owner_id`'s when given; row-locked with `for_update`."""
    if for_update:
        # Items in a second query: Postgres cannot lock the nullable side of an outer join.
        # populate_existing: a locked read must not be answered from the identity map.
        query = _with_items().with_for_update().execution_options(populate_existing=True)
    else:
        # One order: its items joined in, one round trip instead of selectin's two.
        query = select(Order).options(joinedload(Order.items))
    query = query.where(Order.id == order_id)
    if owner_id is not None:
        query = query.where(Order.owner_id == owner_id)
    return (await session.scalars(query)).unique().one_or_none()


async def list_page(
    session: AsyncSession, *, owner_id: str | None, limit: int, after: Cursor | None
) -> Sequence[Order]:
    """Up to `limit` orders, newest first, strictly after `after`; everyone's without owner."""
    query = _with_items().order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
    if owner_id is not None:
        query = query.where(Order.owner_id == owner_id)
    if after is not None:
        query = query.where(
            or_(
                Order.created_at < after.created_at,
                and_(Order.created_at == after.created_at, Order.id < after.id),
            )
        )
    return (await session.scalars(query)).all()


async def pending_created_before(
    session: AsyncSession, *, cutoff: datetime, limit: int
) -> Sequence[Order]:
    """Pending orders older than `cutoff`, oldest first, locked; rows others hold are skipped."""
    query = (
        _with_items()
        .where(Order.status == OrderStatus.pending, Order.created_at < cutoff)
        .order_by(Order.created_at, Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(query)).all()
