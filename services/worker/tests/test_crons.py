"""Maintenance crons: what they ask orders to do, with which token, and when they run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from worker_fakes import FakeOrders

from chassis.jobs import enqueue
from worker.maintenance.jobs import EXPIRE_PENDING_JOB, PURGE_JOB, cron_jobs
from worker.settings import WorkerSettings


async def test_expiry_fails_pending_orders_older_than_the_ttl(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    stale = fake_orders.add_order(age_seconds=1000)
    fresh = fake_orders.add_order(age_seconds=10)
    stale_but_confirmed = fake_orders.add_order(status="confirmed", age_seconds=1000)
    # Enqueued by name, as a tick would be (crons keep no result; orders shows what happened).
    assert await enqueue(arq_pool, EXPIRE_PENDING_JOB, queue_name=queue_name) is not None

    worker = await run_worker(make_settings(crons={"enabled": True, "pending_ttl_seconds": 900}))

    # >= 1: a real tick may also fire if the test crosses a minute boundary.
    assert worker.jobs_complete >= 1
    assert fake_orders.status_of(stale) == "failed"
    assert fake_orders.status_of(fresh) == "pending"
    assert fake_orders.status_of(stale_but_confirmed) == "confirmed"
    assert fake_orders.events[-1]["reason"] == "expired"
    calls = fake_orders.calls_to("/expire-pending")
    assert calls
    assert all(c.body == {"older_than_seconds": 900.0} for c in calls)
    assert all(c.authorization == "Bearer svc-token-1" for c in calls)


async def test_purge_asks_orders_to_drop_old_keys_and_sent_rows(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    assert await enqueue(arq_pool, PURGE_JOB, queue_name=queue_name) is not None

    worker = await run_worker(make_settings(crons={"enabled": True}))

    assert worker.jobs_complete >= 1
    calls = fake_orders.calls_to("/purge")
    assert calls
    expected = {
        "idempotency_older_than_seconds": 86_400.0,
        "outbox_sent_older_than_seconds": 604_800.0,
    }
    assert all(c.body == expected for c in calls)
    assert all(c.authorization == "Bearer svc-token-1" for c in calls)
    assert all(c.status == 200 for c in calls)


async def test_expiry_runs_every_minute_and_purge_hourly() -> None:
    settings = WorkerSettings(crons={"purge_minute": 5})
    now = datetime(2025, 1, 1, 10, 0, 30)

    expiry, purge = cron_jobs(settings)
    expiry.calculate_next(now)
    purge.calculate_next(now)

    assert (expiry.name, purge.name) == (EXPIRE_PENDING_JOB, PURGE_JOB)
    assert expiry.next_run is not None
    assert purge.next_run is not None
    assert expiry.next_run.replace(microsecond=0) == datetime(2025, 1, 1, 10, 1, 0)
    assert purge.next_run.replace(microsecond=0) == datetime(2025, 1, 1, 10, 5, 0)
    later = datetime(2025, 1, 1, 10, 6, 0)
    purge.calculate_next(later)
    assert purge.next_run is not None
    assert purge.next_run.replace(microsecond=0) == datetime(2025, 1, 1, 11, 5, 0)


def test_crons_can_be_switched_off() -> None:
    assert cron_jobs(WorkerSettings(crons={"enabled": False})) == []
