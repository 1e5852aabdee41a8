"""Scenario 2: orders' Postgres goes away and comes back; orders fails fast, then heals alone."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest

from tests.faults.conftest import FIRST_TEST_TIMEOUT, FaultPlatform, account
from tests.faults.load import SteadyLoad, summary
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import ORDER, bearer

SCENARIO = "postgres-down"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

RATE = 10.0
OUTAGE = 4.0
#: Scheduling slack on a loaded 2-core machine on top of the promised timeout.
SLACK = 1.0


async def test_orders_answers_503_fast_while_postgres_is_down_and_recovers_by_itself(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    bob = await account(faults, "postgres-down")
    auth = bearer(bob)
    orders = faults.platform.process("orders")
    timeout = SETTINGS["orders_request_timeout"]
    ready_during: list[dict[str, object]] = []

    calls = itertools.count()

    async def place_or_list(client: httpx.AsyncClient) -> httpx.Response:
        # Writes and reads alternate, as real traffic does.
        if next(calls) % 2:
            return await client.post("/api/v1/orders", json=ORDER, headers=auth)
        return await client.get("/api/v1/orders", headers=auth)

    async with httpx.AsyncClient(base_url=faults.platform.orders, timeout=timeout + 10) as client:
        load = SteadyLoad(client, place_or_list, rate=RATE).start()
        await asyncio.sleep(1)
        down_at = time.monotonic()
        faults.orders_db.down()
        await asyncio.sleep(OUTAGE / 2)
        ready_during.append((await client.get("/health/ready")).json())
        await asyncio.sleep(OUTAGE / 2)
        faults.orders_db.up()
        up_at = time.monotonic()
        recovered_at = None
        while time.monotonic() - up_at < 20:
            answer = await client.get("/api/v1/orders", headers=auth)
            if answer.status_code == 200:
                recovered_at = time.monotonic()
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        outcomes = await load.stop()

        # Wider than the pool (size + overflow): nothing was leaked by the outage.
        width = int(SETTINGS["db_pool_size"] + SETTINGS["db_max_overflow"]) * 3
        burst = await asyncio.gather(
            *(client.get("/api/v1/orders", headers=auth) for _ in range(width))
        )

    # Requests sent once the proxy was down and answered before it came back up.
    during = [o for o in outcomes if down_at + 0.2 <= o.started and o.started + o.latency < up_at]
    after = [o for o in outcomes if recovered_at is not None and o.started >= recovered_at]
    unavailable = [o for o in during if o.status == 503]
    reliability.record(
        SCENARIO,
        requests_during_outage=len(during),
        answered_503_problem=len(unavailable),
        slowest_answer_during_outage_s=max((o.latency for o in during), default=0.0),
        transport_errors=sum(o.error is not None for o in outcomes),
        seconds_to_recover_after_postgres_returned=(
            round(recovered_at - up_at, 2) if recovered_at else "never"
        ),
        same_process=orders.poll() is None and faults.platform.process("orders") is orders,
        burst_after_recovery=f"{sum(r.status_code == 200 for r in burst)}/{width} ok",
    )
    assert during, "no request was sent during the outage"
    assert [o for o in during if o.status != 503] == [], summary(during)
    assert all(o.content_type == "application/problem+json" for o in unavailable)
    assert max(o.latency for o in during) <= timeout + SLACK
    assert [o for o in outcomes if o.error] == [], "a request got no HTTP answer"
    assert "database" in ready_during[0].get("failed", []), ready_during
    assert recovered_at is not None, "orders did not recover after Postgres returned"
    assert orders.poll() is None, "orders was restarted or died"
    assert [o for o in after if not o.ok] == [], summary(after)
    assert [r.status_code for r in burst] == [200] * width
