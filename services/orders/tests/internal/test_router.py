"""Internal endpoints: the service-token guard, status moves and maintenance."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chassis.database import utc_now
from orders.idempotency.models import IdempotencyKey
from orders.main import create_app
from orders.order.models import Order
from orders.outbox.models import OutboxEvent
from orders.settings import OrdersRateLimitSettings

Place = Callable[..., Awaitable[dict[str, Any]]]


def status_url(order_id: str) -> str:
    return f"/internal/v1/orders/{order_id}/status"


INTERNAL_CALLS = [
    ("GET", "/internal/v1/orders/{id}", None),
    ("POST", "/internal/v1/orders/{id}/status", {"status": "confirmed"}),
    ("POST", "/internal/v1/orders/{id}/fulfilment", {"payment": "paid"}),
    ("POST", "/internal/v1/maintenance/expire-pending", {"older_than_seconds": 60}),
    (
        "POST",
        "/internal/v1/maintenance/purge",
        {"idempotency_older_than_seconds": 60, "outbox_sent_older_than_seconds": 60},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), INTERNAL_CALLS)
async def test_internal_routes_need_a_token(
    client: AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path.format(id=uuid.uuid4()), json=body)

    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), INTERNAL_CALLS)
async def test_a_user_token_is_refused_even_with_the_internal_scope(
    client: AsyncClient, tokens: Any, method: str, path: str, body: Any
) -> None:
    user = tokens.headers("mallory", ("orders:internal", "orders:admin"))
    response = await client.request(method, path.format(id=uuid.uuid4()), json=body, headers=user)

    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "body"), INTERNAL_CALLS)
async def test_a_service_token_without_the_internal_scope_is_refused(
    client: AsyncClient, tokens: Any, method: str, path: str, body: Any
) -> None:
    other = tokens.service(scopes=("orders:read",))
    response = await client.request(method, path.format(id=uuid.uuid4()), json=body, headers=other)

    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["orders:internal"]


async def test_the_worker_reads_any_order(client: AsyncClient, tokens: Any, place: Place) -> None:
    order = await place(tokens.user("alice"))

    response = await client.get(f"/internal/v1/orders/{order['id']}", headers=tokens.service())

    assert response.status_code == 200
    assert response.json() == order


async def test_an_unknown_order_is_not_found(client: AsyncClient, tokens: Any) -> None:
    missing = f"/internal/v1/orders/{uuid.uuid4()}"
    assert (await client.get(missing, headers=tokens.service())).status_code == 404
    moved = await client.post(
        status_url(str(uuid.uuid4())), json={"status": "confirmed"}, headers=tokens.service()
    )
    assert moved.status_code == 404


async def test_an_order_moves_through_confirmed_to_fulfilled(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))

    confirmed = await client.post(
        status_url(order["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )
    fulfilled = await client.post(
        status_url(order["id"]), json={"status": "fulfilled"}, headers=tokens.service()
    )

    assert confirmed.status_code == fulfilled.status_code == 200
    assert (confirmed.json()["status"], confirmed.json()["version"]) == ("confirmed", 2)
    assert (fulfilled.json()["status"], fulfilled.json()["version"]) == ("fulfilled", 3)
    assert fulfilled.json()["updated_at"] >= confirmed.json()["updated_at"]
    assert await stored.event_types() == ["order.created", "order.confirmed", "order.fulfilled"]


async def test_a_failed_order_keeps_its_reason(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    await client.post(
        status_url(order["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )

    response = await client.post(
        status_url(order["id"]),
        json={"status": "failed", "reason": "payment declined"},
        headers=tokens.service(),
    )

    assert response.json()["status"] == "failed"
    assert response.json()["status_reason"] == "payment declined"
    events = await stored.events()
    assert events[-1].event_type == "order.failed"
    assert events[-1].payload["order"]["status_reason"] == "payment declined"
    assert events[-1].payload["previous_status"] == "confirmed"


async def test_moving_to_the_current_state_answers_200_and_records_nothing(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    first = await client.post(
        status_url(order["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )

    again = await client.post(
        status_url(order["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )

    assert again.status_code == 200
    assert again.json() == first.json()
    assert await stored.event_types() == ["order.created", "order.confirmed"]


@pytest.mark.parametrize(
    ("path", "target", "current"),
    [
        ([], "fulfilled", "pending"),
        (["confirmed", "fulfilled"], "failed", "fulfilled"),
        (["failed"], "confirmed", "failed"),
    ],
)
async def test_a_move_the_state_machine_forbids_is_409_naming_both_states(
    client: AsyncClient,
    tokens: Any,
    place: Place,
    stored: Any,
    path: list[str],
    target: str,
    current: str,
) -> None:
    order = await place(tokens.user("alice"))
    for status in path:
        await client.post(
            status_url(order["id"]), json={"status": status}, headers=tokens.service()
        )
    events_before = await stored.event_types()

    response = await client.post(
        status_url(order["id"]), json={"status": target}, headers=tokens.service()
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["from_status"] == current
    assert response.json()["to_status"] == target
    assert await stored.event_types() == events_before


async def test_a_cancelled_order_cannot_be_confirmed(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))
    await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice"))

    response = await client.post(
        status_url(order["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )

    assert response.status_code == 409
    assert response.json()["from_status"] == "cancelled"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "cancelled"},
        {"status": "pending"},
        {"status": "shipped"},
        {"status": "failed", "reason": ""},
        {"status": "failed", "reason": "x" * 201},
        {},
    ],
)
async def test_status_bodies_outside_the_workers_moves_are_422(
    client: AsyncClient, tokens: Any, place: Place, body: dict[str, Any]
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.post(status_url(order["id"]), json=body, headers=tokens.service())

    assert response.status_code == 422


async def _age_orders(
    db: async_sessionmaker[AsyncSession], order_ids: list[str], *, seconds: int
) -> None:
    async with db.begin() as session:
        await session.execute(
            update(Order)
            .where(Order.id.in_([uuid.UUID(order_id) for order_id in order_ids]))
            .values(created_at=utc_now() - timedelta(seconds=seconds))
        )


async def test_expiring_fails_old_pending_orders_each_with_its_event(
    client: AsyncClient,
    tokens: Any,
    place: Place,
    stored: Any,
    db: async_sessionmaker[AsyncSession],
) -> None:
    old = [await place(tokens.user("alice")) for _ in range(2)]
    old_confirmed = await place(tokens.user("bob"))
    await client.post(
        status_url(old_confirmed["id"]), json={"status": "confirmed"}, headers=tokens.service()
    )
    recent = await place(tokens.user("alice"))
    await _age_orders(db, [order["id"] for order in [*old, old_confirmed]], seconds=3600)

    response = await client.post(
        "/internal/v1/maintenance/expire-pending",
        json={"older_than_seconds": 900},
        headers=tokens.service(),
    )

    assert response.status_code == 200
    assert response.json() == {"expired": 2}
    by_id = {str(row.id): row for row in await stored.orders()}
    for order in old:
        assert (by_id[order["id"]].status, by_id[order["id"]].status_reason) == (
            "failed",
            "expired",
        )
        assert by_id[order["id"]].version == 2
    assert by_id[old_confirmed["id"]].status == "confirmed"
    assert by_id[recent["id"]].status == "pending"
    failed = [row for row in await stored.events() if row.event_type == "order.failed"]
    assert sorted(row.payload["order"]["id"] for row in failed) == sorted(o["id"] for o in old)
    assert {row.payload["previous_status"] for row in failed} == {"pending"}
    assert {row.payload["order"]["status_reason"] for row in failed} == {"expired"}


async def test_expiring_twice_finds_nothing_the_second_time(
    client: AsyncClient, tokens: Any, place: Place, db: async_sessionmaker[AsyncSession]
) -> None:
    order = await place(tokens.user("alice"))
    await _age_orders(db, [order["id"]], seconds=3600)
    body = {"older_than_seconds": 60.5}  # the worker's settings are floats

    first = await client.post(
        "/internal/v1/maintenance/expire-pending", json=body, headers=tokens.service()
    )
    second = await client.post(
        "/internal/v1/maintenance/expire-pending", json=body, headers=tokens.service()
    )

    assert first.json() == {"expired": 1}
    assert second.json() == {"expired": 0}


async def test_one_expire_call_moves_at_most_the_batch_size(
    make_settings: Any,
    make_client: Any,
    tokens: Any,
    order_body: Any,
    db: async_sessionmaker[AsyncSession],
) -> None:
    app: FastAPI = create_app(make_settings(maintenance={"expire_batch_size": 2}))
    async with make_client(app) as client:
        ids = []
        for _ in range(3):
            created = await client.post(
                "/api/v1/orders", json=order_body(), headers=tokens.user("alice")
            )
            ids.append(created.json()["id"])
        await _age_orders(db, ids, seconds=3600)
        body = {"older_than_seconds": 60}
        path = "/internal/v1/maintenance/expire-pending"

        first = await client.post(path, json=body, headers=tokens.service())
        second = await client.post(path, json=body, headers=tokens.service())

    assert first.json() == {"expired": 2}
    assert second.json() == {"expired": 1}


@pytest.mark.parametrize("age", [-1, 10**12, "soon"])
async def test_expire_refuses_unreasonable_ages(client: AsyncClient, tokens: Any, age: Any) -> None:
    response = await client.post(
        "/internal/v1/maintenance/expire-pending",
        json={"older_than_seconds": age},
        headers=tokens.service(),
    )

    assert response.status_code == 422


async def test_purge_deletes_old_keys_and_old_sent_events_only(
    client: AsyncClient,
    tokens: Any,
    place: Place,
    stored: Any,
    db: async_sessionmaker[AsyncSession],
) -> None:
    now = utc_now()
    async with db.begin() as session:
        for key, age in (("old-1", 90_000), ("old-2", 100_000), ("new", 60)):
            session.add(
                IdempotencyKey(
                    owner_id="alice",
                    key=key,
                    request_hash="0" * 64,
                    status_code=201,
                    response_body={},
                    created_at=now - timedelta(seconds=age),
                )
            )
    for _ in range(4):
        await place(tokens.user("alice"))
    events = await stored.events()
    sent_ages = {events[0].id: 8 * 86400, events[1].id: 60, events[2].id: None}
    async with db.begin() as session:
        for event_id, age in sent_ages.items():
            sent_at = None if age is None else now - timedelta(seconds=age)
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id)
                .values(sent_at=sent_at, created_at=now - timedelta(days=30))
            )

    response = await client.post(
        "/internal/v1/maintenance/purge",
        json={"idempotency_older_than_seconds": 86400, "outbox_sent_older_than_seconds": 604800},
        headers=tokens.service(),
    )

    assert response.status_code == 200
    assert response.json() == {"idempotency_keys": 2, "outbox_rows": 1}
    assert [record.key for record in await stored.keys()] == ["new"]
    remaining = {row.id for row in await stored.events()}
    assert remaining == {event.id for event in events[1:]}


async def test_the_default_rate_limit_never_throttles_the_worker(
    make_settings: Any, make_client: Any, tokens: Any, place: Place
) -> None:
    # The documented defaults (100 requests a minute per caller): the worker makes
    # three internal calls per order, so a budget meant for users would stall
    # fulfilment at about one order every two seconds.
    app: FastAPI = create_app(make_settings(rate_limit=OrdersRateLimitSettings().model_dump()))
    limit = app.state.settings.rate_limit.requests
    async with make_client(app) as client:
        order = await place(tokens.user("alice"))
        statuses = [
            (
                await client.get(f"/internal/v1/orders/{order['id']}", headers=tokens.service())
            ).status_code
            for _ in range(limit + 20)
        ]
        # Users' calls are still limited: the exemption is the internal routes'.
        user_statuses = [
            (await client.get("/api/v1/orders", headers=tokens.user("bob"))).status_code
            for _ in range(limit + 1)
        ]

    assert set(statuses) == {200}
    assert user_statuses.count(429) == 1
