"""Scenario 3: orders turns slow; the gateway times out, its breaker opens, fails fast, recovers."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest

from tests.faults.conftest import FIRST_TEST_TIMEOUT, FaultPlatform, account
from tests.faults.load import SteadyLoad, summary
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import bearer

SCENARIO = "orders-slow"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

RATE = 8.0
SLOW_FOR = 5.0


async def breaker(client: httpx.AsyncClient) -> dict[str, Any]:
    """The gateway's breaker for orders, as its readiness report shows it."""
    report = (await client.get("/health/ready")).json()
    state: dict[str, Any] = report["checks"]["upstreams"]["details"]["orders"]
    return state


async def test_a_slow_orders_gets_504_then_an_open_breaker_fails_fast_then_it_closes(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    carol = await account(faults, "orders-slow")
    auth = bearer(carol)
    deadline = SETTINGS["gateway_orders_deadline"]
    states: list[str] = []

    async with httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client:
        assert (await client.get("/api/v1/orders", headers=auth)).status_code == 200
        assert (await breaker(client))["state"] == "closed"

        faults.orders_route.set_latency(SETTINGS["orders_added_latency"], direction="downstream")
        slow_at = time.monotonic()
        load = SteadyLoad(
            client, lambda c: c.get("/api/v1/orders", headers=auth), rate=RATE
        ).start()
        while time.monotonic() - slow_at < SLOW_FOR:
            states.append((await breaker(client))["state"])
            await asyncio.sleep(0.25)
        outcomes = await load.stop()

        faults.orders_route.heal()
        healed_at = time.monotonic()
        closed_after = None
        while time.monotonic() - healed_at < SETTINGS["breaker_open"] + 10:
            answer = await client.get("/api/v1/orders", headers=auth)
            if answer.status_code == 200 and (await breaker(client))["state"] == "closed":
                closed_after = time.monotonic() - healed_at
                break
            await asyncio.sleep(0.1)
        after = [(await client.get("/api/v1/orders", headers=auth)).status_code for _ in range(5)]

    timed_out = [o for o in outcomes if o.status == 504]
    fail_fast = [o for o in outcomes if o.status == 503]
    reliability.record(
        SCENARIO,
        requests_while_slow=len(outcomes),
        answered_504=len(timed_out),
        slowest_504_s=max((o.latency for o in timed_out), default=0.0),
        answered_503_breaker_open=len(fail_fast),
        fail_fast_median_ms=round(statistics.median(o.latency for o in fail_fast) * 1000, 1)
        if fail_fast
        else "none",
        fail_fast_max_ms=round(max((o.latency for o in fail_fast), default=0.0) * 1000, 1),
        breaker_states_seen=" → ".join(dict.fromkeys(states)),
        seconds_to_close_after_orders_healed=round(closed_after, 2) if closed_after else "never",
    )
    assert [o for o in outcomes if o.status not in (503, 504)] == [], summary(outcomes)
    assert len(timed_out) >= SETTINGS["breaker_threshold"], summary(outcomes)
    # Given up before orders answered. The client times each answer through its own event
    # loop on the same (possibly loaded) 2-core machine, so the bound is the slowness the
    # gateway must not wait for, not its deadline plus a guess at scheduling delay; the
    # figure above shows how close to the deadline the answers came.
    assert all(o.latency < SETTINGS["orders_added_latency"] for o in timed_out), summary(outcomes)
    assert all(f"within {deadline:g}s" in o.body for o in timed_out), timed_out[0].body
    assert all("problem+json" in o.content_type for o in outcomes)
    assert fail_fast, f"the breaker never failed a call fast: {summary(outcomes)}"
    assert all("circuit open" in o.body for o in fail_fast)
    # Refused without touching the network: it never waits a deadline (how fast: the figures).
    assert max(o.latency for o in fail_fast) < deadline
    assert "open" in states
    assert closed_after is not None, "the breaker did not close once orders was healthy"
    assert after == [200] * 5
