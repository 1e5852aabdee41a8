"""Scenario 5: the worker is SIGKILLed mid-job; restarted, it runs the job again, to one effect."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from chassis.jobs import job_id_for
from tests.faults.conftest import (
    FIRST_TEST_TIMEOUT,
    FaultPlatform,
    account,
    fulfilment_jobs_running,
    order_status,
    outbox_types,
    wait_for_job_running,
    wait_for_status,
)
from tests.faults.load import Patient, SteadyLoad, summary
from tests.faults.report import SETTINGS, Reliability
from tests.support.accounts import ORDER, bearer
from tests.support.events import event_socket

SCENARIO = "worker-killed"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT)]

LIFECYCLE = sorted(["order.created", "order.confirmed", "order.fulfilled"])
#: The simulated payment step is made long so the kill lands inside a job.
SLOW_PAYMENT = "2.0"
RATE = 2.0


async def job_tries(faults: FaultPlatform, order_id: str) -> int | None:
    """How many times arq started the order's fulfilment job (from its kept result)."""
    redis = ArqRedis.from_url(faults.redis_url)
    try:
        result = await Job(job_id_for("orders.fulfil", order_id), redis).result_info()
    finally:
        await redis.aclose()
    return None if result is None else result.job_try


async def test_a_job_killed_mid_way_runs_again_after_restart_with_one_effect(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    erin = await account(faults, "worker-killed")
    auth = bearer(erin)
    # The gateway's latency on a loaded machine is not what this judges (Patient).
    patient = Patient()
    place = patient.place(ORDER, auth)
    faults.platform.stop("worker")
    faults.restart("worker", WORKER_FULFIL__LATENCY_SECONDS=SLOW_PAYMENT)

    async with (
        httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client,
        event_socket(faults.gateway, erin["access_token"]) as log,
    ):
        load = SteadyLoad(client, place, rate=RATE).start()
        created = await place(client)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        # The job is inside its (slow) payment step: kill it there.
        await wait_for_job_running(faults, order_id, within=20)
        faults.platform.kill("worker")
        killed_at = time.monotonic()
        in_flight = await fulfilment_jobs_running(faults)
        faults.restart("worker")
        await asyncio.sleep(1)
        outcomes = await load.stop()

        rerun_window = SETTINGS["fulfil_timeout"] + 10
        await wait_for_status(faults, order_id, "fulfilled", within=rerun_window + 20)
        fulfilled_after = time.monotonic() - killed_at
        placed = await order_status(faults, owner=erin["user"]["id"])
        deadline = time.monotonic() + rerun_window + 20
        while any(
            status != "fulfilled" or sorted(log.of(oid)) != LIFECYCLE for oid, status in placed
        ):
            assert time.monotonic() < deadline, f"orders not fulfilled: {placed}"
            await asyncio.sleep(0.2)
            placed = await order_status(faults, owner=erin["user"]["id"])

    staged = {oid: sorted(await outbox_types(faults, oid)) for oid, _ in placed}
    doubled = {oid: types for oid, types in staged.items() if types != LIFECYCLE}
    tries = await job_tries(faults, order_id)
    reliability.record(
        SCENARIO,
        orders_placed=len(placed),
        jobs_in_flight_at_kill=len(in_flight),
        seconds_from_kill_to_fulfilled=round(fulfilled_after, 2),
        killed_job_runs=tries,
        orders_with_a_second_state_change=len(doubled),
        events_on_the_socket=len(log.events),
        answers_too_slow_sent_again=patient.retried,
    )
    assert [o for o in outcomes if o.status != 201] == [], summary(outcomes)
    assert (order_id, "fulfilled") in placed
    assert tries is not None
    assert tries >= 2, "the killed job did not run again"
    assert doubled == {}, f"orders changed state twice: {doubled}"
    assert len(log.ids()) == len(set(log.ids())), "an event reached the socket twice"
