"""Scenario 8: Redis blackholed (packets dropped, only timeouts tell); the worker waits it out.

The worker's process runs through the whole outage, live and not ready, and is
ready again after the heal; the orders placed just before and during the
outage are fulfilled, each once in effect.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.faults.conftest import (
    FIRST_TEST_TIMEOUT,
    FaultPlatform,
    account,
    outbox_types,
    wait_for_status,
    wait_ready,
)
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import ORDER, bearer

SCENARIO = "redis-blackholed"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

LIFECYCLE = sorted(["order.created", "order.confirmed", "order.fulfilled"])
#: Generous bounded waits (a loaded 2-core machine), not latency promises.
PLACE_WITHIN = 60.0
RECOVER_WITHIN = 60.0
#: A probe sent this long after the blackhole began cannot have been answered before it.
SETTLE = 1.0


async def place_order(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    """One order, retried under one Idempotency-Key until accepted: placed once, whatever the
    answers while Redis hangs every service's calls to it for a socket timeout."""
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + PLACE_WITHIN
    while True:
        try:
            response = await client.post("/api/v1/orders", json=ORDER, headers=headers)
            if response.status_code == 201:
                return str(response.json()["id"])
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "an order was never accepted"
        await asyncio.sleep(0.5)


async def task_dump(faults: FaultPlatform, worker: subprocess.Popen[bytes]) -> str:
    """What the worker's coroutines wait on (chassis.task_dump, on SIGUSR1), from its log."""
    log = faults.platform.log_path("worker")
    start = log.stat().st_size
    worker.send_signal(signal.SIGUSR1)
    await asyncio.sleep(2.0)
    with log.open("rb") as lines:
        lines.seek(start)
        dumped = [
            line
            for line in lines.read().decode(errors="replace").splitlines()
            if "task_stack" in line
        ]
    return "\n".join(dumped) or "no task_stack lines in the worker's log"


async def test_a_blackholed_redis_pauses_the_worker_which_then_fulfils_every_order_once(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    grace = await account(faults, "redis-blackholed")
    auth = bearer(grace)
    worker = faults.platform.process("worker")
    health = faults.platform.worker_health
    outage = SETTINGS["redis_blackhole"]
    probes: list[tuple[float, int, int, dict[str, Any]]] = []

    async with (
        httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client,
        httpx.AsyncClient(base_url=health, timeout=10) as worker_client,
    ):
        before = await place_order(client, auth)  # its job may be queued or running now
        faults.redis.blackhole()
        down_at = time.monotonic()
        during = asyncio.create_task(place_order(client, auth))
        while time.monotonic() - down_at < outage:
            sent = time.monotonic() - down_at
            live = await worker_client.get("/health/live")
            ready = await worker_client.get("/health/ready")
            probes.append((sent, live.status_code, ready.status_code, ready.json()))
            assert worker.poll() is None, f"the worker exited: {worker.returncode}"
            await asyncio.sleep(0.5)
        faults.redis.heal()
        healed_at = time.monotonic()
        during_id = await during
        try:
            await wait_ready(health, within=RECOVER_WITHIN)
        except AssertionError as stalled:
            raise AssertionError(f"{stalled}\n{await task_dump(faults, worker)}") from None
        ready_after = time.monotonic() - healed_at
        for order_id in (before, during_id):
            await wait_for_status(faults, order_id, "fulfilled", within=RECOVER_WITHIN)
        fulfilled_after = time.monotonic() - healed_at

    staged = {
        order_id: sorted(await outbox_types(faults, order_id)) for order_id in (before, during_id)
    }
    settled = [p for p in probes if p[0] >= SETTLE]
    not_ready = [p for p in settled if p[2] == 503 and "redis" in p[3].get("failed", [])]
    reliability.record(
        SCENARIO,
        blackhole_seconds=outage,
        worker_probes_during_outage=len(probes),
        worker_live=f"{sum(p[1] == 200 for p in probes)}/{len(probes)}",
        worker_not_ready_naming_redis=f"{len(not_ready)}/{len(settled)}",
        worker_restarts=0 if faults.platform.process("worker") is worker else 1,
        seconds_to_ready_after_heal=round(ready_after, 2),
        seconds_to_both_orders_fulfilled_after_heal=round(fulfilled_after, 2),
        orders_with_a_second_state_change=sum(types != LIFECYCLE for types in staged.values()),
    )
    assert worker.poll() is None, "the worker exited after the heal"
    assert faults.platform.process("worker") is worker, "the worker was restarted"
    assert all(p[1] == 200 for p in probes), "the worker stopped being live"
    assert settled, "no probe during the outage"
    assert not_ready == settled, f"readiness did not report Redis down: {settled[-1]}"
    assert staged == {before: LIFECYCLE, during_id: LIFECYCLE}, staged
