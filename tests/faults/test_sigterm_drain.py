"""Scenario 6: SIGTERM under load to each service: readiness first, in-flight work completes.

The load stands in for a load balancer: it sends to the service while its
readiness answers 200 and stops sending as soon as it does not (as a
Kubernetes Service drops a pod whose readiness fails). Every request it sent
must get a complete answer below 500: no 5xx, no reset, no lost connection.
A fault proxy adds latency behind the service so requests are in flight when
the signal lands.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from chassis.testing.faultproxy import FaultProxy
from tests.faults.conftest import (
    FIRST_TEST_TIMEOUT,
    FaultPlatform,
    account,
    outbox_types,
    wait_for_job_running,
    wait_for_status,
    wait_ready,
)
from tests.faults.load import Outcome, Send, SteadyLoad, summary
from tests.faults.report import Reliability
from tests.support.accounts import ORDER, bearer

SCENARIO = "sigterm-drain"
pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(FIRST_TEST_TIMEOUT + 120)]

RATE = 8.0
#: Held behind each service so that requests are in flight when the signal lands: per
#: database round trip (several per request) for users and orders, per answer for the gateway.
BEHIND = {"users": 0.1, "orders": 0.1, "gateway": 0.3}
WARM = 1.0


@dataclass
class Drained:
    sent: int
    in_flight_at_sigterm: int
    dropped: list[Outcome]
    readiness_flip_s: float | None
    flipped_by: str
    """What took the service out of rotation: "503" (readiness), else the transport error."""
    exit_code: int


async def drain(
    faults: FaultPlatform, name: str, base_url: str, send: Send, behind: FaultProxy
) -> Drained:
    """SIGTERM `name` while a load-balanced load runs against it; restart it after."""
    in_rotation = True
    flipped_at: float | None = None
    flipped_by = ""
    behind.set_latency(BEHIND[name], direction="downstream")

    async def balancer(client: httpx.AsyncClient) -> None:
        nonlocal in_rotation, flipped_at, flipped_by
        while in_rotation:
            try:
                status = str((await client.get("/health/ready", timeout=2)).status_code)
            except httpx.TimeoutException:
                continue  # a slow probe on a loaded machine: probe again, as a kubelet would
            except httpx.TransportError as exc:
                status = type(exc).__name__  # the listener closed before readiness said so
            if status != "200":
                in_rotation, flipped_at, flipped_by = False, time.monotonic(), status
            await asyncio.sleep(0.05)

    admit: Callable[[], bool] = lambda: in_rotation  # noqa: E731
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        watcher = asyncio.create_task(balancer(client))
        load = SteadyLoad(client, send, rate=RATE, admit=admit).start()
        await asyncio.sleep(WARM)
        sigterm_at = time.monotonic()
        exit_code = await asyncio.to_thread(faults.platform.stop, name)
        outcomes = await load.stop()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    behind.heal()
    faults.restart(name)
    return Drained(
        sent=len(outcomes),
        in_flight_at_sigterm=sum(o.started <= sigterm_at < o.started + o.latency for o in outcomes),
        dropped=[o for o in outcomes if not o.ok],
        readiness_flip_s=None if flipped_at is None else flipped_at - sigterm_at,
        flipped_by=flipped_by,
        exit_code=exit_code,
    )


async def test_sigterm_turns_readiness_first_and_drops_no_accepted_request(
    healthy: FaultPlatform, reliability: Reliability
) -> None:
    faults = healthy
    frank = await account(faults, "sigterm")
    auth = bearer(frank)
    platform = faults.platform
    results = {
        "users": await drain(
            faults,
            "users",
            platform.users,
            lambda c: c.get("/api/v1/users/me", headers=auth),
            faults.users_db,
        ),
        "orders": await drain(
            faults,
            "orders",
            platform.orders,
            lambda c: c.get("/api/v1/orders", headers=auth),
            faults.orders_db,
        ),
        "gateway": await drain(
            faults,
            "gateway",
            platform.gateway,
            lambda c: c.get("/api/v1/orders", headers=auth),
            faults.orders_route,
        ),
    }
    await wait_ready(platform.gateway)
    worker = await drain_worker_mid_job(faults, auth)

    figures: dict[str, object] = {}
    for name, result in results.items():
        figures[f"{name}_sent"] = result.sent
        figures[f"{name}_in_flight_at_sigterm"] = result.in_flight_at_sigterm
        figures[f"{name}_dropped"] = len(result.dropped)
        # Until the emulated load balancer had seen a 503 (its probe interval included).
        figures[f"{name}_balancer_saw_503_after_s"] = (
            round(result.readiness_flip_s, 3) if result.readiness_flip_s is not None else "never"
        )
    figures |= worker
    reliability.record(SCENARIO, **figures)

    for name, result in results.items():
        assert result.sent > 0, name
        assert result.in_flight_at_sigterm > 0, (name, result)
        assert result.dropped == [], f"{name}: {summary(result.dropped)}"
        assert result.flipped_by == "503", f"{name}: out of rotation by {result.flipped_by}"
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert result.exit_code in (0, -signal.SIGTERM), (name, result.exit_code)
    assert worker["worker_job_in_flight_lost"] == 0


async def drain_worker_mid_job(faults: FaultPlatform, auth: dict[str, str]) -> dict[str, object]:
    """SIGTERM the worker while a job is in its (slow) payment step: the job must finish."""
    faults.platform.stop("worker")
    faults.restart("worker", WORKER_FULFIL__LATENCY_SECONDS="2.0")
    async with httpx.AsyncClient(base_url=faults.gateway, timeout=10) as client:
        created = await client.post("/api/v1/orders", json=ORDER, headers=auth)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    await wait_for_job_running(faults, order_id, within=20)
    started = time.monotonic()
    exit_code = await asyncio.to_thread(faults.platform.stop, "worker")
    stopped_after = time.monotonic() - started
    faults.restart("worker")
    await wait_for_status(faults, order_id, "fulfilled", within=30)
    types = sorted(await outbox_types(faults, order_id))
    lost = int(types != sorted(["order.created", "order.confirmed", "order.fulfilled"]))
    return {
        "worker_stop_waited_for_job_s": round(stopped_after, 2),
        "worker_exit_code": exit_code,
        "worker_job_in_flight_lost": lost,
    }
