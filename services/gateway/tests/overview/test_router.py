"""`GET /api/v1/me/overview`: profile and recent orders together; orders may drop out alone."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI, Response
from gateway_testing import Gateway, OrdersState, Tokens, UsersState, bearer

from chassis.testing.processes import free_port
from chassis.testing.servers import serve_in_thread


async def test_overview_has_the_profile_and_the_five_most_recent_orders(
    gateway: Gateway, tokens: Tokens, users_state: UsersState, orders_state: OrdersState
) -> None:
    token = tokens.issue()
    subject = tokens.subject_of(token)
    async with gateway.client() as client:
        response = await client.get(
            "/api/v1/me/overview", headers={**bearer(token), "X-Request-ID": "overview-1"}
        )

    assert response.status_code == 200
    body = response.json()
    assert body["profile"]["id"] == subject
    assert body["orders"]["status"] == "ok"
    assert len(body["orders"]["items"]) == 5
    assert {order["owner_id"] for order in body["orders"]["items"]} == {subject}
    profile_call = users_state.recorder.last()
    orders_call = orders_state.recorder.last()
    assert (profile_call.path, orders_call.path, orders_call.query) == (
        "/api/v1/users/me",
        "/api/v1/orders",
        "limit=5",
    )
    assert profile_call.header("x-request-id") == orders_call.header("x-request-id") == "overview-1"
    assert orders_call.header("x-forwarded-for") == "127.0.0.1"


async def test_overview_with_orders_down_still_answers_with_the_profile(
    start_gateway, tokens: Tokens
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_gateway(upstreams={"orders": {"base_url": dead}}) as gateway:
        async with gateway.client() as client:
            response = await client.get("/api/v1/me/overview", headers=bearer(tokens.issue()))

    assert response.status_code == 200
    assert response.json()["orders"] == {"status": "unavailable"}
    assert response.json()["profile"]["role"] == "user"


def sleepy_app(seconds: float) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/orders")
    async def list_orders() -> dict[str, object]:
        await asyncio.sleep(seconds)
        return {"items": [], "next_cursor": None}

    return app


async def test_overview_with_slow_orders_gives_up_on_them_within_the_budget(
    start_gateway, tokens: Tokens
) -> None:
    with (
        serve_in_thread(sleepy_app(3), lifespan="off") as slow_orders,
        start_gateway(
            overview={"orders_timeout_seconds": 0.2},
            upstreams={"orders": {"base_url": slow_orders}},
        ) as gateway,
    ):
        async with gateway.client() as client:
            started = time.monotonic()
            response = await client.get("/api/v1/me/overview", headers=bearer(tokens.issue()))
            elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["orders"] == {"status": "unavailable"}
    assert elapsed < 3


async def test_overview_with_an_open_orders_breaker_is_unavailable_without_a_call(
    start_gateway, tokens: Tokens, orders_state: OrdersState
) -> None:
    breaker = {"deadline_seconds": 0.2, "retry_attempts": 1, "breaker_failure_threshold": 1}
    with start_gateway(upstreams={"orders": breaker}) as gateway:
        async with gateway.client() as client:
            headers = bearer(tokens.issue())
            tripped = await client.get("/api/v1/orders/slow?seconds=2", headers=headers)
            response = await client.get("/api/v1/me/overview", headers=headers)

    assert tripped.status_code == 504
    assert response.status_code == 200
    assert response.json()["orders"] == {"status": "unavailable"}
    assert "/api/v1/orders" not in orders_state.recorder.paths()


async def test_overview_needs_a_token(gateway: Gateway, users_state: UsersState) -> None:
    async with gateway.client() as client:
        response = await client.get("/api/v1/me/overview")

    assert response.status_code == 401
    assert "/api/v1/users/me" not in users_state.recorder.paths()


async def test_overview_without_users_is_a_503(start_gateway, tokens: Tokens) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with start_gateway(upstreams={"users": {"base_url": dead}}) as gateway:
        async with gateway.client() as client:
            response = await client.get("/api/v1/me/overview", headers=bearer(tokens.issue()))

    assert response.status_code == 503
    assert "'users'" in response.json()["detail"]


async def test_overview_passes_on_the_refusal_of_users(gateway: Gateway, tokens: Tokens) -> None:
    # A token the gateway accepts for an account users no longer has.
    async with gateway.client() as client:
        response = await client.get("/api/v1/me/overview", headers=bearer(tokens.issue("gone-1")))

    assert response.status_code == 404
    assert response.json()["detail"] == "The account no longer exists."
    assert response.headers["content-type"] == "application/problem+json"


async def test_overview_with_a_malformed_profile_is_a_502(gateway: Gateway, tokens: Tokens) -> None:
    async with gateway.client() as client:
        response = await client.get(
            "/api/v1/me/overview", headers=bearer(tokens.issue("not-a-uuid"))
        )

    assert response.status_code == 502
    assert "'users'" in response.json()["detail"]


def answering_app(status: int, body: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/orders")
    async def list_orders() -> Response:
        return Response(body, status_code=status, media_type="application/json")

    return app


@pytest.mark.parametrize(
    ("status", "body"),
    [(403, b'{"detail": "no"}'), (200, b'{"items": "not a list"}')],
)
async def test_an_orders_refusal_or_a_malformed_page_makes_orders_unavailable(
    status: int, body: bytes, start_gateway, tokens: Tokens
) -> None:
    with (
        serve_in_thread(answering_app(status, body), lifespan="off") as orders_url,
        start_gateway(upstreams={"orders": {"base_url": orders_url}}) as gateway,
    ):
        async with gateway.client() as client:
            response = await client.get("/api/v1/me/overview", headers=bearer(tokens.issue()))

    assert response.status_code == 200
    assert response.json()["orders"] == {"status": "unavailable"}
