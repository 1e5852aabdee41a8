"""Scenario 7: the same event delivered twice is applied once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from chassis.events import EventEnvelope, channel_for
from chassis.jobs import job_id_for
from tests.faults.conftest import (
    FIRST_TEST_TIMEOUT,
    FaultPlatform,
    account,
    order_status,
    orders_query,
    outbox_types,
)
from tests.faults.load import Patient, SteadyLoad, summary
from tests.faults.report import Reliability
from tests.support.accounts import ORDER, bearer
from tests.support.events import event_socket

SCENARIO = "duplicate-delivery"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

LIFECYCLE = sorted(["order.created", "order.confirmed", "order.fulfilled"])
RATE = 3.0
#: order.created relayed again, order.fulfilled published twice more.
DUPLICATES = 3


async def gateway_events_received(client: httpx.AsyncClient) -> float:
    """The gateway subscriber's `events_received_total`, all types together."""
    text = (await client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("events_received_total{") and 'consumer="gateway"' in line
    )


async def envelope_of(faults: FaultPlatform, order_id: str, event_type: str) -> EventEnvelope:
    """One staged event, rebuilt from its outbox row exactly as the relay publishes it."""
    rows = await orders_query(
        faults,
        "SELECT id, event_type, event_version, occurred_at, producer, subject, trace, payload "
        "FROM outbox WHERE payload->'order'->>'id' = %s AND event_type = %s",
        order_id,
        event_type,
    )
    (row,) = rows
    return EventEnvelope(
        id=row[0],
        type=row[1],
        version=row[2],
        occurred_at=row[3],
        producer=row[4],
        subject=row[5],
        trace=row[6] or {},
        payload=row[7],
    )


async def order_version(faults: FaultPlatform, order_id: str) -> int:
    rows = await orders_query(faults, "SELECT version FROM orders WHERE id::text = %s", order_id)
    return int(rows[0][0])


async def test_an_event_delivered_twice_is_applied_once(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    gina = await account(faults, "duplicates")
    auth = bearer(gina)
    # The gateway's latency on a loaded machine is not what this judges (Patient).
    patient = Patient()
    place = patient.place(ORDER, auth)

    async with (
        httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client,
        event_socket(faults.gateway, gina["access_token"]) as log,
    ):
        load = SteadyLoad(client, place, rate=RATE).start()
        created = await place(client)
        order_id = created.json()["id"]
        await asyncio.sleep(1)
        outcomes = await load.stop()
        # Every order's events delivered: from here the gateway receives only the duplicates.
        owned = [oid for oid, _ in await order_status(faults, owner=gina["user"]["id"])]
        deadline = time.monotonic() + 30
        while any(sorted(log.of(oid)) != LIFECYCLE for oid in owned):
            assert time.monotonic() < deadline, {oid: log.of(oid) for oid in owned}
            await asyncio.sleep(0.05)
        version = await order_version(faults, order_id)
        received_before = await gateway_events_received(client)

        # 1. The relay delivers order.created again (as after a crash before its commit):
        #    published again, and the fulfilment job offered to arq again.
        created_event = await envelope_of(faults, order_id, "order.created")
        await orders_query(
            faults,
            "UPDATE outbox SET sent_at = NULL, next_attempt_at = now() WHERE id = %s RETURNING id",
            created_event.id,
        )
        deadline = time.monotonic() + 10
        while (
            await orders_query(faults, "SELECT sent_at FROM outbox WHERE id = %s", created_event.id)
        )[0][0] is None:
            assert time.monotonic() < deadline, "the relay did not deliver the row again"
            await asyncio.sleep(0.05)
        # 2. The broker delivers order.fulfilled twice more.
        fulfilled = await envelope_of(faults, order_id, "order.fulfilled")
        with faults.redis_client() as redis:
            for _ in range(2):
                redis.publish(channel_for(fulfilled.type), fulfilled.to_json())

        deadline = time.monotonic() + 10
        while await gateway_events_received(client) < received_before + DUPLICATES:
            assert time.monotonic() < deadline, "the duplicates never reached the gateway"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # what would be a second delivery has had time to arrive
        received_after = await gateway_events_received(client)

    arq = ArqRedis.from_url(faults.redis_url)
    try:
        result = await Job(job_id_for("orders.fulfil", order_id), arq).result_info()
    finally:
        await arq.aclose()
    staged = sorted(await outbox_types(faults, order_id))
    version_after = await order_version(faults, order_id)
    duplicates_on_socket = len(log.ids()) - len(set(log.ids()))
    reliability.record(
        SCENARIO,
        duplicates_injected=DUPLICATES,
        duplicates_reaching_the_gateway=int(received_after - received_before),
        duplicates_on_the_socket=duplicates_on_socket,
        fulfilment_job_runs=result.job_try if result else "none",
        state_changes_after_duplicates=version_after - version,
        orders_placed_under_load=len(outcomes),
        answers_too_slow_sent_again=patient.retried,
    )
    assert [o for o in outcomes if o.status != 201] == [], summary(outcomes)
    assert duplicates_on_socket == 0, "an event reached the WebSocket twice"
    assert sorted(log.of(order_id)) == LIFECYCLE
    assert staged == LIFECYCLE, f"a second state change was staged: {staged}"
    assert version_after == version
    assert result is not None
    assert result.job_try == 1, "the fulfilment job ran again"
