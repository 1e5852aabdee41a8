"""Idempotency keys: one order per (user, key), the first answer replayed, races included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from chassis.database import Database, utc_now
from contracts.orders import OrderCreate
from orders.idempotency import repository
from orders.idempotency.service import RequestInProgress, fingerprint, run_once
from orders.order import service
from orders.order.models import OrderItemRow

KEY = "create-order-7f3a"


class Nothing(BaseModel):
    """An answer with no fields, for work that never gets to give one."""


def keyed(headers: dict[str, str], key: str = KEY) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_the_same_key_and_body_replays_the_first_answer(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    headers = keyed(tokens.user("alice"))
    first = await client.post("/api/v1/orders", json=order_body(), headers=headers)
    second = await client.post("/api/v1/orders", json=order_body(), headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["location"] == first.headers["location"]
    assert len(await stored.orders()) == 1
    assert await stored.event_types() == ["order.created"]


async def test_the_replay_is_the_first_answer_even_after_the_order_changed(
    client: AsyncClient, tokens: Any, order_body: Any
) -> None:
    headers = keyed(tokens.user("alice"))
    first = await client.post("/api/v1/orders", json=order_body(), headers=headers)
    await client.post(f"/api/v1/orders/{first.json()['id']}/cancel", headers=tokens.user("alice"))

    replay = await client.post("/api/v1/orders", json=order_body(), headers=headers)

    assert replay.json() == first.json()
    assert replay.json()["status"] == "pending"


async def test_key_order_and_whitespace_of_the_body_do_not_matter(
    client: AsyncClient, tokens: Any, stored: Any
) -> None:
    headers = {**keyed(tokens.user("alice")), "Content-Type": "application/json"}
    compact = '{"items":[{"sku":"A","quantity":1,"unit_price_minor":5}],"currency":"EUR"}'
    spaced = (
        '{ "currency": "EUR",\n  "items": [ {"unit_price_minor": 5, "quantity": 1, "sku": "A"} ] }'
    )

    first = await client.post("/api/v1/orders", content=compact, headers=headers)
    second = await client.post("/api/v1/orders", content=spaced, headers=headers)

    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert len(await stored.orders()) == 1


async def test_the_same_key_with_another_body_is_refused(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    headers = keyed(tokens.user("alice"))
    await client.post("/api/v1/orders", json=order_body(quantity=1), headers=headers)

    response = await client.post("/api/v1/orders", json=order_body(quantity=2), headers=headers)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "different request body" in response.json()["detail"]
    assert len(await stored.orders()) == 1


async def test_keys_are_scoped_per_user(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    alice = await client.post(
        "/api/v1/orders", json=order_body(), headers=keyed(tokens.user("alice"))
    )
    bob = await client.post("/api/v1/orders", json=order_body(), headers=keyed(tokens.user("bob")))

    assert alice.status_code == bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert alice.json()["id"] != bob.json()["id"]
    assert bob.json()["owner_id"] == "bob"
    assert len(await stored.orders()) == 2


async def test_requests_without_a_key_each_create_an_order(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    for _ in range(2):
        await client.post("/api/v1/orders", json=order_body(), headers=tokens.user("alice"))

    assert len(await stored.orders()) == 2
    assert await stored.keys() == []


async def test_the_first_answer_is_stored_with_the_order(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    response = await client.post(
        "/api/v1/orders", json=order_body(), headers=keyed(tokens.user("alice"))
    )

    [record] = await stored.keys()
    assert (record.owner_id, record.key, record.status_code) == ("alice", KEY, 201)
    assert record.response_body == response.json()
    assert record.request_hash == fingerprint(order_body())


@pytest.mark.parametrize("key", ["k" * 256, "tab\tinside", "snow\u2603man".encode()])
async def test_a_malformed_key_is_a_422_problem(
    client: AsyncClient, tokens: Any, order_body: Any, key: str | bytes
) -> None:
    headers: dict[str, str | bytes] = {**tokens.user("alice"), "Idempotency-Key": key}
    response = await client.post("/api/v1/orders", json=order_body(), headers=headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_a_request_that_failed_stores_nothing_so_its_fix_can_reuse_the_key(
    client: AsyncClient, tokens: Any, order_body: Any
) -> None:
    headers = keyed(tokens.user("alice"))
    refused = await client.post("/api/v1/orders", json=order_body(currency="eur"), headers=headers)
    fixed = await client.post("/api/v1/orders", json=order_body(), headers=headers)

    assert refused.status_code == 422
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


async def test_concurrent_duplicates_create_one_order(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    headers = keyed(tokens.user("alice"))

    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=order_body(), headers=headers) for _ in range(2))
    )

    assert [response.status_code for response in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert sum("idempotent-replayed" in response.headers for response in responses) == 1
    assert len(await stored.orders()) == 1
    assert await stored.event_types() == ["order.created"]


async def test_many_concurrent_duplicates_still_create_one_order(
    client: AsyncClient, tokens: Any, order_body: Any, stored: Any
) -> None:
    headers = keyed(tokens.user("alice"))

    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=order_body(), headers=headers) for _ in range(8))
    )

    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert sum("idempotent-replayed" in response.headers for response in responses) == 7
    assert len(await stored.orders()) == 1


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(create_async_engine(database_url), service="orders")
    try:
        yield database
    finally:
        await database.dispose()


async def _wait_until_blocked_on_a_lock(
    db: async_sessionmaker[AsyncSession], eventually: Any
) -> None:
    """Until some other connection of this database waits for a row or index lock."""

    async def blocked() -> bool:
        async with db() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            return bool(waiting)

    await eventually(blocked, within=10)


async def test_a_duplicate_waits_for_the_first_request_in_flight_then_replays_it(
    client: AsyncClient,
    tokens: Any,
    order_body: Any,
    stored: Any,
    database: Database,
    db: async_sessionmaker[AsyncSession],
    eventually: Any,
) -> None:
    data = OrderCreate.model_validate(order_body())
    async with database.session() as session:
        # The first request has staged its order and key, and not committed yet.
        first = await service.place_order(session, owner_id="alice", data=data, idempotency_key=KEY)
        duplicate = asyncio.create_task(
            client.post("/api/v1/orders", json=order_body(), headers=keyed(tokens.user("alice")))
        )
        await _wait_until_blocked_on_a_lock(db, eventually)
        assert not duplicate.done()

    response = await duplicate
    assert response.status_code == 201
    assert response.headers["idempotent-replayed"] == "true"
    assert response.json() == first.order.model_dump(mode="json")
    assert len(await stored.orders()) == 1
    assert await stored.event_types() == ["order.created"]


async def test_a_duplicate_of_a_first_request_that_rolled_back_creates_the_order(
    client: AsyncClient,
    tokens: Any,
    order_body: Any,
    stored: Any,
    database: Database,
    db: async_sessionmaker[AsyncSession],
    eventually: Any,
) -> None:
    data = OrderCreate.model_validate(order_body())
    duplicate: asyncio.Task[Any] | None = None

    async def first_request_fails() -> None:
        nonlocal duplicate
        async with database.session() as session:
            await service.place_order(session, owner_id="alice", data=data, idempotency_key=KEY)
            duplicate = asyncio.create_task(
                client.post(
                    "/api/v1/orders", json=order_body(), headers=keyed(tokens.user("alice"))
                )
            )
            await _wait_until_blocked_on_a_lock(db, eventually)
            raise RuntimeError("the first request failed before commit")

    with pytest.raises(RuntimeError, match="before commit"):
        await first_request_fails()

    assert duplicate is not None
    response = await duplicate
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert [str(row.id) for row in await stored.orders()] == [response.json()["id"]]


async def test_a_conflict_with_nothing_to_replay_asks_the_client_to_retry(
    database: Database, stored: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another request took the key and committed; its row is purged (the retention
    # job) between this request's INSERT finding the key taken and its read.
    async with database.session() as other:
        await repository.claim(other, _key_row("alice", KEY))
    find = repository.find

    async def purged_then_find(session: AsyncSession, **where: str) -> Any:
        async with database.session() as purge:
            await purge.execute(text("DELETE FROM idempotency_keys"))
        return await find(session, **where)

    monkeypatch.setattr(repository, "find", purged_then_find)

    async def work() -> Nothing:
        return Nothing()

    async with database.session() as session:
        with pytest.raises(RequestInProgress) as raised:
            await run_once(
                session, owner_id="alice", key=KEY, request={"a": 1}, work=work, answer=Nothing
            )

    assert raised.value.status_code == 409
    assert await stored.keys() == []


async def test_an_error_in_the_work_is_not_taken_for_a_used_key(
    database: Database, stored: Any
) -> None:
    async def work() -> Nothing:
        # A row the database refuses, so the flush before the key's INSERT fails.
        session.add(OrderItemRow(order_id=None, position=0, sku="X", quantity=1))
        return Nothing()

    with pytest.raises(IntegrityError):
        async with database.session() as session:
            await run_once(
                session, owner_id="alice", key=KEY, request={"a": 1}, work=work, answer=Nothing
            )
    assert await stored.keys() == []


def _key_row(owner_id: str, key: str) -> dict[str, Any]:
    return {
        "owner_id": owner_id,
        "key": key,
        "request_hash": fingerprint({"a": 1}),
        "status_code": 201,
        "response_body": {},
        "created_at": utc_now(),
    }


async def test_a_new_key_is_stored_without_a_read_first(
    database: Database, order_body: Any, stored: Any
) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        # before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
        statements.append(" ".join(str(args[2]).split()))

    data = OrderCreate.model_validate(order_body())
    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with database.session() as session:
            await service.place_order(session, owner_id="alice", data=data, idempotency_key=KEY)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)

    on_keys = [s for s in statements if "idempotency_keys" in s]
    assert [s.split()[0] for s in on_keys] == ["INSERT"]
    # No savepoint around the work: two round trips per order fewer.
    assert not [s for s in statements if s.split()[0] in {"SAVEPOINT", "RELEASE"}], statements
    assert len(await stored.keys()) == len(await stored.orders()) == 1


async def test_a_replay_leaves_nothing_of_the_work_it_ran(
    database: Database, order_body: Any, stored: Any
) -> None:
    data = OrderCreate.model_validate(order_body())
    async with database.session() as session:
        first = await service.place_order(session, owner_id="alice", data=data, idempotency_key=KEY)
    async with database.session() as session:
        replay = await service.place_order(
            session, owner_id="alice", data=data, idempotency_key=KEY
        )

    assert replay.replayed
    assert replay.order == first.order
    assert [str(order.id) for order in await stored.orders()] == [first.order.id]
    assert await stored.event_types() == ["order.created"]
