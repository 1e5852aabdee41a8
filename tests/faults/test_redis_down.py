"""Scenario 1: Redis down while orders are placed; nothing is lost once it returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.faults.conftest import (
    FIRST_TEST_TIMEOUT,
    FaultPlatform,
    account,
    orders_query,
)
from tests.faults.load import Patient, SteadyLoad, summary
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import ORDER, bearer
from tests.support.events import event_socket

SCENARIO = "redis-down"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

RATE = 5.0
#: Every order's events; the relay may publish them out of order after an outage (ADR 0003).
LIFECYCLE = sorted(["order.created", "order.confirmed", "order.fulfilled"])
DELIVERY_DEADLINE = 45.0


async def test_orders_placed_while_redis_is_down_deliver_every_event_after_it_returns(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    alice = await account(faults, "redis-down")
    auth = bearer(alice)
    # A refusal fails this; a 504 of the gateway's deadline on a loaded machine is sent
    # again under the same Idempotency-Key (Patient), as a client would.
    patient = Patient()
    outage = SETTINGS["redis_outage"]
    probes: list[tuple[int, int, dict[str, Any]]] = []

    async with (
        httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client,
        event_socket(faults.gateway, alice["access_token"]) as log,
    ):
        load = SteadyLoad(client, patient.place(ORDER, auth), rate=RATE).start()
        await asyncio.sleep(2)
        down_at = time.monotonic()
        faults.redis.down()
        while time.monotonic() - down_at < outage:
            live = await client.get("/health/live")
            ready = await client.get("/health/ready")
            probes.append((live.status_code, ready.status_code, ready.json()))
            await asyncio.sleep(0.5)
        faults.redis.up()
        up_at = time.monotonic()
        await asyncio.sleep(2)
        outcomes = await load.stop()

        rows = await orders_query(
            faults, "SELECT id::text FROM orders WHERE owner_id = %s", alice["user"]["id"]
        )
        order_ids = {row[0] for row in rows}
        deadline = time.monotonic() + DELIVERY_DEADLINE
        while any(sorted(log.of(order_id)) != LIFECYCLE for order_id in order_ids):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        recovered_after = time.monotonic() - up_at

    during = [o for o in outcomes if down_at <= o.started < up_at]
    refused = [o for o in outcomes if o.status != 201]
    assert refused == [], f"orders refused: {summary(refused)}"
    assert during, "no order was placed during the outage"
    assert all(live == 200 for live, _, _ in probes), "the gateway stopped being live"
    named = [body for _, _, body in probes if body["checks"]["redis"]["status"] == "failed"]
    assert named, f"readiness never named Redis: {probes[-1]}"
    # Named, not failed: a gateway that serves on must stay in the load balancer.
    assert all(ready == 200 for _, ready, _ in probes), "the gateway left the load balancer"

    created = {e["payload"]["order"]["id"] for e in log.events if e["type"] == "order.created"}
    received = {order_id: sorted(log.of(order_id)) for order_id in order_ids}
    incomplete = {k: v for k, v in received.items() if v != LIFECYCLE}
    reliability.record(
        SCENARIO,
        orders_placed=len(outcomes),
        placed_during_outage=len(during),
        refused=len(refused),
        orders_in_database=len(order_ids),
        created_events_received=len(created & order_ids),
        events_received=len(log.events),
        events_lost=sum(len(set(LIFECYCLE) - set(v)) for v in incomplete.values()),
        readiness_during_outage=f"{sorted({r for _, r, _ in probes})} naming redis "
        f"in {len(named)}/{len(probes)} probes",
        seconds_to_deliver_all_after_redis_returned=round(recovered_after, 2),
        answers_too_slow_sent_again=patient.retried,
    )
    assert log.closed is None, f"the WebSocket opened before the outage closed: {log.closed}"
    assert incomplete == {}, f"{len(incomplete)} orders missed events, e.g. {incomplete}"
    assert len(created & order_ids) == len(order_ids) == len(outcomes)
    assert len(log.ids()) == len(set(log.ids())), "an event reached the socket twice"
