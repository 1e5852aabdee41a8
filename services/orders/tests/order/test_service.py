"""Every state change and its outbox event are one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.database import Database
from contracts.orders import OrderCreate, OrderItem, OrderStatus
from orders.order import service

Place = Callable[..., Awaitable[dict[str, Any]]]


async def test_each_change_writes_its_event_with_the_order_and_previous_status(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    events = await stored.events()
    assert [row.event_type for row in events] == ["order.created"]
    created = events[0]
    assert created.producer == "orders"
    assert created.subject == "alice"
    assert created.sent_at is None
    assert created.payload == {"order": order, "previous_status": None}

    answers = {}
    for status in ("confirmed", "fulfilled"):
        response = await client.post(
            f"/internal/v1/orders/{order['id']}/status",
            json={"status": status},
            headers=tokens.service(),
        )
        answers[status] = response.json()

    events = await stored.events()
    assert [row.event_type for row in events] == [
        "order.created",
        "order.confirmed",
        "order.fulfilled",
    ]
    assert events[1].payload == {"order": answers["confirmed"], "previous_status": "pending"}
    assert events[2].payload == {"order": answers["fulfilled"], "previous_status": "confirmed"}
    assert [row.payload["order"]["version"] for row in events] == [1, 2, 3]
    assert {row.subject for row in events} == {"alice"}


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The unit of work the session dependency uses, on the test database."""
    database = Database(create_async_engine(database_url), service="orders")
    try:
        yield database
    finally:
        await database.dispose()


async def test_a_failed_unit_of_work_leaves_neither_order_nor_event(
    database: Database, stored: Any
) -> None:
    data = OrderCreate(
        items=[OrderItem(sku="SKU", quantity=1, unit_price_minor=100)], currency="EUR"
    )

    async def place_then_fail() -> None:
        async with database.session() as session:
            await service.create_order(session, owner_id="alice", data=data)
            await session.flush()
            raise RuntimeError("something failed after the order was staged")

    with pytest.raises(RuntimeError, match="after the order"):
        await place_then_fail()

    assert await stored.orders() == []
    assert await stored.events() == []


@pytest.fixture
def outbox_refuses_inserts(database_url: str) -> Any:
    """A trigger that makes every outbox INSERT fail, as a broken database would."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'outbox refused'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox "
            "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()"
        )
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse_outbox ON outbox")
            conn.execute("DROP FUNCTION refuse_outbox()")


@pytest.mark.usefixtures("outbox_refuses_inserts")
async def test_an_order_whose_event_cannot_be_written_is_not_stored(
    app: FastAPI, make_client: Any, tokens: Any, order_body: Any, stored: Any
) -> None:
    async with make_client(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post(
                "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
            )

    assert response.status_code == 500
    assert "outbox refused" not in response.text
    assert await stored.orders() == []
    assert await stored.events() == []


async def test_a_failed_status_change_leaves_neither_the_move_nor_its_event(
    tokens: Any, place: Place, stored: Any, database: Database
) -> None:
    order = await place(tokens.user("alice"))

    async def confirm_then_fail() -> None:
        async with database.session() as session:
            await service.change_status(session, order_id=order["id"], status=OrderStatus.confirmed)
            await session.flush()
            raise RuntimeError("connection lost before commit")

    with pytest.raises(RuntimeError, match="lost"):
        await confirm_then_fail()

    assert [(row.status, row.version) for row in await stored.orders()] == [("pending", 1)]
    assert await stored.event_types() == ["order.created"]
