"""Order use cases: place, list, read, cancel, move, fulfil and expire, each with its outbox event.

Every state change goes through `_move` (the transition table in `state`) and
stages its ``order.<status>`` event in the caller's transaction, so an order
and its event are committed together or not at all (ADR 0003).

Writes that create rows are Core INSERTs sent at once, not ORM objects left for
the session's flush: placing an order has nothing else to flush, and the unit
of work (sorting the pending objects, building and reading back their state)
cost more CPU than the statements (issue 15). Reads and moves load ORM objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.auth import Principal
from chassis.database import utc_now
from chassis.errors import NotFound
from chassis.events import insert_event
from contracts.events import EVENT_TYPES, ORDER_EVENT_VERSION, OrderEventPayload
from contracts.orders import (
    OrderCreate,
    OrderItem,
    OrderPage,
    OrderRead,
    OrderStatus,
    PaymentOutcome,
)
from orders.idempotency import service as idempotency
from orders.order import repository
from orders.order.fulfilment import FULFILMENT_RESULTS
from orders.order.models import Order
from orders.order.state import check_move
from orders.outbox.models import OutboxEvent
from orders.pagination import Cursor

PRODUCER = "orders"
ADMIN_SCOPE = "orders:admin"
EXPIRED_REASON = "expired"


class OrderNotFound(NotFound):
    default_detail = "The order does not exist."


def owner_scope(principal: Principal) -> str | None:
    """Whose orders `principal` may see: its own, or everyone's (None) with orders:admin."""
    return None if principal.has_scopes(ADMIN_SCOPE) else principal.subject


def parse_order_id(raw: str) -> uuid.UUID:
    """An order id from a path; a malformed one names no order, so it is a 404 too."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise OrderNotFound from None


def to_read(order: Order) -> OrderRead:
    return OrderRead(
        id=str(order.id),
        owner_id=order.owner_id,
        status=OrderStatus(order.status),
        status_reason=order.status_reason,
        items=[
            OrderItem(sku=row.sku, quantity=row.quantity, unit_price_minor=row.unit_price_minor)
            for row in order.items
        ],
        amount_minor=order.amount_minor,
        currency=order.currency,
        created_at=order.created_at,
        updated_at=order.updated_at,
        version=order.version,
    )


async def _record_event(
    session: AsyncSession, order: OrderRead, *, previous_status: OrderStatus | None
) -> None:
    await insert_event(
        session,
        OutboxEvent,
        type=EVENT_TYPES[order.status],
        producer=PRODUCER,
        subject=order.owner_id,
        payload=OrderEventPayload(order=order, previous_status=previous_status).model_dump(
            mode="json"
        ),
        version=ORDER_EVENT_VERSION,
    )


async def create_order(
    session: AsyncSession, *, owner_id: str, data: OrderCreate, now: datetime | None = None
) -> OrderRead:
    """Write a pending order, its items and its ``order.created`` event."""
    created_at = now or utc_now()
    order = OrderRead(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        status=OrderStatus.pending,
        status_reason=None,
        items=data.items,
        # Bounded by the schema: at most 100 x 1000 x 10^9 = 10^14, far inside a BIGINT.
        amount_minor=sum(item.quantity * item.unit_price_minor for item in data.items),
        currency=data.currency,
        created_at=created_at,
        updated_at=created_at,
        version=1,
    )
    await repository.insert_order(session, order)
    await _record_event(session, order, previous_status=None)
    return order


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """A placed order; `replayed` when it is the answer to an earlier request with the key."""

    order: OrderRead
    replayed: bool = False


async def place_order(
    session: AsyncSession,
    *,
    owner_id: str,
    data: OrderCreate,
    idempotency_key: str | None,
) -> PlacedOrder:
    """Create an order, once per idempotency key when one is given."""

    async def work() -> OrderRead:
        return await create_order(session, owner_id=owner_id, data=data)

    if idempotency_key is None:
        return PlacedOrder(await work())
    outcome = await idempotency.run_once(
        session,
        owner_id=owner_id,
        key=idempotency_key,
        request=data.model_dump(mode="json"),
        work=work,
        answer=OrderRead,
    )
    return PlacedOrder(outcome.answer, replayed=outcome.replayed)


async def list_orders(
    session: AsyncSession, *, viewer: Principal, limit: int, cursor: str | None
) -> OrderPage:
    """A page of the orders `viewer` may see, newest first."""
    after = Cursor.decode(cursor) if cursor is not None else None
    rows = await repository.list_page(
        session, owner_id=owner_scope(viewer), limit=limit + 1, after=after
    )
    page = rows[:limit]
    next_cursor = (
        Cursor(created_at=page[-1].created_at, id=page[-1].id).encode()
        if len(rows) > limit
        else None
    )
    return OrderPage(items=[to_read(order) for order in page], next_cursor=next_cursor)


async def get_order(
    session: AsyncSession, *, order_id: str, owner_id: str | None = None
) -> OrderRead:
    """The order; someone else's is reported as missing (no enumeration)."""
    order = await repository.get(session, parse_order_id(order_id), owner_id=owner_id)
    if order is None:
        raise OrderNotFound
    return to_read(order)


async def _move(
    session: AsyncSession,
    order: Order,
    target: OrderStatus,
    *,
    reason: str | None,
    now: datetime,
) -> OrderRead:
    current = OrderStatus(order.status)
    check_move(current, target)
    order.status = target
    order.status_reason = reason
    order.version += 1
    order.updated_at = now
    read = to_read(order)
    await _record_event(session, read, previous_status=current)
    return read


async def change_status(
    session: AsyncSession,
    *,
    order_id: str,
    status: OrderStatus,
    reason: str | None = None,
    owner_id: str | None = None,
    now: datetime | None = None,
) -> OrderRead:
    """Move the order to `status` (409 if the table forbids it).

    Asking for the state the order is already in changes nothing and records no
    event, so a retried move (the worker's, a double-clicked cancel) is harmless.
    """
    order = await repository.get(
        session, parse_order_id(order_id), owner_id=owner_id, for_update=True
    )
    if order is None:
        raise OrderNotFound
    if order.status == status:
        return to_read(order)
    return await _move(session, order, status, reason=reason, now=now or utc_now())


async def record_fulfilment(
    session: AsyncSession,
    *,
    order_id: str,
    payment: PaymentOutcome,
    now: datetime | None = None,
) -> OrderRead:
    """Apply the worker's payment outcome: pending -> confirmed -> fulfilled (or failed).

    One transaction, one event per move, so a pending order's subscribers see
    ``order.confirmed`` then ``order.fulfilled`` as before. The same report
    again changes nothing and records nothing (a retried job); a report the
    table refuses (the order was cancelled or expired meanwhile, or the other
    outcome was recorded) is a 409 naming both states.
    """
    order = await repository.get(session, parse_order_id(order_id), for_update=True)
    if order is None:
        raise OrderNotFound
    result = FULFILMENT_RESULTS[payment]
    if order.status == result.status and order.status_reason == result.reason:
        return to_read(order)
    moment = now or utc_now()
    if order.status == OrderStatus.pending:
        await _move(session, order, OrderStatus.confirmed, reason=None, now=moment)
    return await _move(session, order, result.status, reason=result.reason, now=moment)


async def cancel_order(session: AsyncSession, *, order_id: str, viewer: Principal) -> OrderRead:
    """The owner (or an admin) cancels a pending or confirmed order."""
    return await change_status(
        session, order_id=order_id, status=OrderStatus.cancelled, owner_id=owner_scope(viewer)
    )


async def expire_pending_orders(
    session: AsyncSession, *, older_than: timedelta, limit: int, now: datetime | None = None
) -> int:
    """Fail pending orders created more than `older_than` ago (reason "expired"); count them."""
    moment = now or utc_now()
    stale = await repository.pending_created_before(
        session, cutoff=moment - older_than, limit=limit
    )
    for order in stale:
        await _move(session, order, OrderStatus.failed, reason=EXPIRED_REASON, now=moment)
    return len(stale)
