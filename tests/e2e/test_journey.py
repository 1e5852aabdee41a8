"""One real order journey through the gateway, with every service a real process.

sign up -> log in -> open the WebSocket -> create an order with an Idempotency-Key
-> the retried request returns the same order -> order.created then order.fulfilled
arrive on the socket -> list orders -> cancel a second order -> user A gets 404 for
user B's order -> refresh-token reuse is refused -> one trace id links the gateway,
orders and worker spans of the first order.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
import websockets

from tests.e2e.conftest import E2EPlatform
from tests.support.accounts import ORDER, next_order_event, sign_up_and_log_in

pytestmark = pytest.mark.e2e

EVENT_DEADLINE_SECONDS = 20.0


def step(message: str) -> None:
    print(f"[journey] {message}", flush=True)


async def test_order_journey(platform: E2EPlatform) -> None:
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=10) as client:
        alice = await sign_up_and_log_in(client, "alice")
        step(f"signed up and logged in as {alice['email']}")
        auth = {"Authorization": f"Bearer {alice['access_token']}"}

        ws_url = platform.gateway.replace("http://", "ws://") + "/ws/events"
        async with websockets.connect(ws_url, additional_headers=auth) as socket:
            step("live event socket open")

            key = str(uuid.uuid4())
            created = await client.post(
                "/api/v1/orders", json=ORDER, headers={**auth, "Idempotency-Key": key}
            )
            assert created.status_code == 201, created.text
            order = created.json()
            step(f"order {order['id']} created: {order['status']}, {order['amount_minor']} minor")

            retried = await client.post(
                "/api/v1/orders", json=ORDER, headers={**auth, "Idempotency-Key": key}
            )
            assert retried.status_code == 201
            assert retried.json() == order
            step("retried POST with the same Idempotency-Key returned the same order")

            deadline = time.monotonic() + EVENT_DEADLINE_SECONDS
            first = await next_order_event(socket, deadline=deadline)
            assert first["type"] == "order.created"
            assert first["payload"]["order"]["id"] == order["id"]
            step("event order.created arrived on the socket")
            seen = [first["type"]]
            while seen[-1] != "order.fulfilled":
                event = await next_order_event(socket, deadline=deadline)
                assert event["payload"]["order"]["id"] == order["id"]
                seen.append(event["type"])
                step(f"event {event['type']} arrived on the socket")
            assert seen == ["order.created", "order.confirmed", "order.fulfilled"]

        listed = await client.get("/api/v1/orders", headers=auth)
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [order["id"]]
        assert listed.json()["items"][0]["status"] == "fulfilled"
        step("listed orders: 1, fulfilled")

        second = (await client.post("/api/v1/orders", json=ORDER, headers=auth)).json()
        # The worker holds each order in its simulated payment step for a second (see
        # conftest), so it is still pending here and may be cancelled; the worker's
        # report that follows is refused (409) and its charge voided.
        cancelled = await client.post(f"/api/v1/orders/{second['id']}/cancel", headers=auth)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        step(f"second order {cancelled.json()['id']} cancelled")

        bob = await sign_up_and_log_in(client, "bob")
        bob_auth = {"Authorization": f"Bearer {bob['access_token']}"}
        foreign = await client.get(f"/api/v1/orders/{order['id']}", headers=bob_auth)
        assert foreign.status_code == 404
        assert foreign.headers["content-type"] == "application/problem+json"
        step("bob gets 404 for alice's order")

        rotated = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]}
        )
        assert rotated.status_code == 200
        reused = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]}
        )
        assert reused.status_code == 401
        family_revoked = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
        )
        assert family_revoked.status_code == 401
        step("refresh-token reuse refused and its family revoked")

    await assert_one_trace_links_gateway_orders_and_worker(platform)


async def assert_one_trace_links_gateway_orders_and_worker(platform: E2EPlatform) -> None:
    """The first order's trace (the earliest POST at the gateway) reaches orders and the worker."""
    deadline = time.monotonic() + 15
    while True:
        spans = platform.spans.spans
        posts = sorted(
            (s for s in spans if s.service == "gateway" and s.name == "POST /api/v1/orders"),
            key=lambda span: span.start_time_unix_nano,
        )
        trace = posts[0].trace_id if posts else None
        services = {s.service for s in spans if s.trace_id == trace}
        if {"gateway", "orders", "worker"} <= services:
            break
        assert time.monotonic() < deadline, f"the first order's trace reached only {services}"
        await asyncio.sleep(0.2)
    names = sorted({f"{s.service}: {s.name}" for s in spans if s.trace_id == trace})
    step(f"trace {trace} links {len(names)} span names across gateway, orders and worker")
    for name in names:
        step(f"  {name}")
    # One hop from the worker back to orders per order (ADR 0019): the fulfilment report.
    # Before, the job made three (GET the order, POST status confirmed, POST status fulfilled).
    # Compared as operations, not a count: a client retry on a busy machine is the same hop.
    worker_calls = [
        s.name
        for s in spans
        if s.trace_id == trace and s.service == "orders" and "/internal/" in s.name
    ]
    step(f"worker -> orders calls for the first order: {len(worker_calls)} ({worker_calls})")
    assert set(worker_calls) == {"POST /internal/v1/orders/{order_id}/fulfilment"}
