"""The public orders API: create, list with cursors, read with ETags, cancel."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

Place = Callable[..., Awaitable[dict[str, Any]]]


async def test_create_answers_201_with_the_pending_order_and_its_total(
    client: AsyncClient, tokens: Any
) -> None:
    body = {
        "items": [
            {"sku": "BOOK", "quantity": 3, "unit_price_minor": 1999},
            {"sku": "PEN", "quantity": 1, "unit_price_minor": 250},
        ],
        "currency": "EUR",
    }
    response = await client.post("/api/v1/orders", json=body, headers=tokens.user("alice"))

    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert "idempotent-replayed" not in response.headers
    assert uuid.UUID(order["id"])
    assert order["owner_id"] == "alice"
    assert order["status"] == "pending"
    assert order["status_reason"] is None
    assert order["items"] == body["items"]
    assert order["amount_minor"] == 3 * 1999 + 250
    assert order["currency"] == "EUR"
    assert order["version"] == 1
    assert order["created_at"] == order["updated_at"]


async def test_the_largest_possible_order_total_is_stored_exactly(
    client: AsyncClient, tokens: Any
) -> None:
    items = [{"sku": f"SKU-{n}", "quantity": 1000, "unit_price_minor": 10**9} for n in range(100)]
    response = await client.post(
        "/api/v1/orders", json={"items": items, "currency": "JPY"}, headers=tokens.user()
    )

    assert response.status_code == 201
    order_id = response.json()["id"]
    assert response.json()["amount_minor"] == 10**14
    again = await client.get(f"/api/v1/orders/{order_id}", headers=tokens.user())
    assert again.json()["amount_minor"] == 10**14
    assert len(again.json()["items"]) == 100


LINE = {"sku": "SKU-1", "quantity": 1, "unit_price_minor": 100}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [], "currency": "EUR"}, "items"),
        ({"items": [LINE] * 101, "currency": "EUR"}, "items"),
        ({"items": [{**LINE, "quantity": 0}], "currency": "EUR"}, "quantity"),
        ({"items": [{**LINE, "quantity": 1001}], "currency": "EUR"}, "quantity"),
        ({"items": [{**LINE, "unit_price_minor": -1}], "currency": "EUR"}, "unit_price_minor"),
        (
            {"items": [{**LINE, "unit_price_minor": 10**9 + 1}], "currency": "EUR"},
            "unit_price_minor",
        ),
        ({"items": [{**LINE, "unit_price_minor": 1.5}], "currency": "EUR"}, "unit_price_minor"),
        ({"items": [{**LINE, "sku": ""}], "currency": "EUR"}, "sku"),
        ({"items": [{**LINE, "sku": "x" * 65}], "currency": "EUR"}, "sku"),
        ({"items": [LINE], "currency": "eur"}, "currency"),
        ({"items": [LINE], "currency": "EURO"}, "currency"),
        ({"items": [LINE], "currency": "E1R"}, "currency"),
        ({"items": [LINE]}, "currency"),
        ({"items": [LINE], "currency": "EUR", "status": "fulfilled"}, "status"),
    ],
)
async def test_invalid_bodies_are_refused_with_a_422_problem(
    client: AsyncClient, tokens: Any, stored: Any, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/orders", json=body, headers=tokens.user())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any(field in error["loc"] for error in response.json()["errors"])
    assert await stored.orders() == []


async def test_creating_needs_a_token(client: AsyncClient, order_body: Any) -> None:
    response = await client.post("/api/v1/orders", json=order_body())

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_creating_needs_the_write_scope(
    client: AsyncClient, tokens: Any, order_body: Any
) -> None:
    read_only = tokens.user(scopes=("orders:read",))
    response = await client.post("/api/v1/orders", json=order_body(), headers=read_only)

    assert response.status_code == 403
    assert response.json()["missing_scopes"] == ["orders:write"]


async def test_a_token_for_another_audience_is_refused(
    client: AsyncClient, tokens: Any, order_body: Any
) -> None:
    foreign = tokens.headers("alice", ("orders:write",), audience="another-api")
    response = await client.post("/api/v1/orders", json=order_body(), headers=foreign)

    assert response.status_code == 401


async def test_pages_list_only_the_callers_orders_newest_first(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    mine = [(await place(tokens.user("alice"), sku=f"A{n}"))["id"] for n in range(5)]
    await place(tokens.user("bob"), sku="B")

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/api/v1/orders", params=params, headers=tokens.user("alice"))
        assert response.status_code == 200
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(order["id"] for order in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(mine))


async def test_a_page_that_holds_everything_has_no_next_cursor(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    await place(tokens.user("alice"))
    response = await client.get("/api/v1/orders", headers=tokens.user("alice"))

    assert response.status_code == 200
    assert len(response.json()["items"]) == 1
    assert response.json()["next_cursor"] is None


async def test_someone_without_orders_gets_an_empty_page(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    await place(tokens.user("alice"))
    response = await client.get("/api/v1/orders", headers=tokens.user("carol"))

    assert response.json() == {"items": [], "next_cursor": None}


async def test_an_admin_lists_everyones_orders(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    alice = await place(tokens.user("alice"))
    bob = await place(tokens.user("bob"))

    response = await client.get("/api/v1/orders", headers=tokens.admin())

    assert [order["id"] for order in response.json()["items"]] == [bob["id"], alice["id"]]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        _b64(b"\xff\xfe"),
        _b64(b"[1, 2]"),
        _b64(b'{"c": "2024-01-01T00:00:00+00:00"}'),
        _b64(b'{"c": "yesterday", "i": "00000000-0000-0000-0000-000000000000"}'),
        _b64(b'{"c": "2024-01-01T00:00:00", "i": "00000000-0000-0000-0000-000000000000"}'),
        _b64(b'{"c": "2024-01-01T00:00:00+00:00", "i": 42}'),
        "x" * 201,
    ],
)
async def test_a_bad_cursor_is_a_422_problem(client: AsyncClient, tokens: Any, cursor: str) -> None:
    response = await client.get("/api/v1/orders", params={"cursor": cursor}, headers=tokens.user())

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("limit", [0, 101, "many"])
async def test_a_limit_out_of_range_is_a_422_problem(
    client: AsyncClient, tokens: Any, limit: Any
) -> None:
    response = await client.get("/api/v1/orders", params={"limit": limit}, headers=tokens.user())

    assert response.status_code == 422


async def test_listing_needs_the_read_scope(client: AsyncClient, tokens: Any) -> None:
    response = await client.get("/api/v1/orders", headers=tokens.user(scopes=("profile",)))

    assert response.status_code == 403


async def test_an_order_is_read_with_a_weak_etag_from_its_version(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.get(f"/api/v1/orders/{order['id']}", headers=tokens.user("alice"))

    assert response.status_code == 200
    assert response.json() == order
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["cache-control"] == "private, no-cache"


@pytest.mark.parametrize("if_none_match", ['W/"1"', '"1"', '"7", W/"1"', "*"])
async def test_if_none_match_with_the_current_etag_gives_304_without_a_body(
    client: AsyncClient, tokens: Any, place: Place, if_none_match: str
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.get(
        f"/api/v1/orders/{order['id']}",
        headers={**tokens.user("alice"), "If-None-Match": if_none_match},
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'


async def test_a_stale_etag_gets_the_changed_order_and_its_new_etag(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))
    await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice"))

    response = await client.get(
        f"/api/v1/orders/{order['id']}", headers={**tokens.user("alice"), "If-None-Match": 'W/"1"'}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.headers["etag"] == 'W/"2"'


async def test_another_users_order_is_not_found_like_a_missing_one(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))

    theirs = await client.get(f"/api/v1/orders/{order['id']}", headers=tokens.user("bob"))
    missing = await client.get(f"/api/v1/orders/{uuid.uuid4()}", headers=tokens.user("bob"))

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"]


async def test_a_malformed_order_id_is_not_found(client: AsyncClient, tokens: Any) -> None:
    response = await client.get("/api/v1/orders/not-a-uuid", headers=tokens.user())

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_admin_reads_anyones_order(client: AsyncClient, tokens: Any, place: Place) -> None:
    order = await place(tokens.user("alice"))

    response = await client.get(f"/api/v1/orders/{order['id']}", headers=tokens.admin())

    assert response.status_code == 200
    assert response.json()["owner_id"] == "alice"


async def test_a_pending_order_is_cancelled(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice")
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["version"] == 2
    assert await stored.event_types() == ["order.created", "order.cancelled"]


async def test_a_confirmed_order_is_cancelled(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))
    confirmed = await client.post(
        f"/internal/v1/orders/{order['id']}/status",
        json={"status": "confirmed"},
        headers=tokens.service(),
    )
    assert confirmed.status_code == 200

    response = await client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice")
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["version"] == 3


async def test_a_fulfilled_order_cannot_be_cancelled(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    for status in ("confirmed", "fulfilled"):
        await client.post(
            f"/internal/v1/orders/{order['id']}/status",
            json={"status": status},
            headers=tokens.service(),
        )

    response = await client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice")
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["from_status"] == "fulfilled"
    assert problem["to_status"] == "cancelled"
    assert "fulfilled" in problem["detail"]
    assert "cancelled" in problem["detail"]
    assert await stored.event_types() == ["order.created", "order.confirmed", "order.fulfilled"]


async def test_cancelling_twice_changes_nothing_the_second_time(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))
    first = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice"))

    second = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("alice"))

    assert second.status_code == 200
    assert second.json() == first.json()
    assert await stored.event_types() == ["order.created", "order.cancelled"]


async def test_another_users_order_cannot_be_cancelled(
    client: AsyncClient, tokens: Any, place: Place, stored: Any
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.user("bob"))

    assert response.status_code == 404
    assert [row.status for row in await stored.orders()] == ["pending"]


async def test_an_admin_cancels_anyones_order(
    client: AsyncClient, tokens: Any, place: Place
) -> None:
    order = await place(tokens.user("alice"))

    response = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=tokens.admin())

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
