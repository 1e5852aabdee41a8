"""``orders.fulfil`` through a real arq worker, Redis and HTTP: outcomes, retries, twice-safety."""

from __future__ import annotations

import io
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from prometheus_client import REGISTRY
from worker_fakes import FakeOrders, FakeUsers

from chassis.jobs import enqueue, job_id_for
from chassis.testing.processes import free_port
from contracts.jobs import FULFIL_ORDER
from worker.fulfilment.jobs import retry_delay
from worker.settings import WorkerSettings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class ScriptedRandom(random.Random):
    """Plays the given values from random(), then behaves like a seeded generator."""

    def __init__(self, *values: float) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        if self.values:
            return self.values.pop(0)
        return super().random()


async def enqueue_fulfil(
    pool: ArqRedis, order_id: str, queue: str, *, job_id: str | None = None
) -> Job:
    queued = await enqueue(
        pool,
        FULFIL_ORDER,
        order_id,
        job_id=job_id or job_id_for(FULFIL_ORDER, order_id),
        queue_name=queue,
    )
    assert queued is not None
    return queued


async def outcome(job: Job) -> tuple[bool, Any, int]:
    info = await job.result_info()
    assert info is not None
    return info.success, info.result, info.job_try


def capture_logs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """JSON log lines the worker writes to stdout from now on.

    Called in the test body: pytest swaps sys.stdout for its own capture after
    fixtures are set up. The buffer outlives the test, so loggers still bound to
    it after the test write nowhere harmful.
    """
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    return lines


# --- outcomes ----------------------------------------------------------------------


async def test_a_pending_order_is_confirmed_then_fulfilled_by_one_report(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_lines = capture_logs(monkeypatch)
    order_id = fake_orders.add_order()
    successes = sample("job_outcomes_total", task=FULFIL_ORDER, outcome="success")
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings(log={"json_output": True}))

    assert await outcome(job) == (True, "fulfilled", 1)
    assert fake_orders.status_of(order_id) == "fulfilled"
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]
    assert [e["previous_status"] for e in fake_orders.events] == ["pending", "confirmed"]
    assert sample("job_outcomes_total", task=FULFIL_ORDER, outcome="success") == successes + 1
    logged = [
        line
        for line in log_lines()
        if line.get("order_id") == order_id and line["logger"] == "worker.fulfilment"
    ]
    # One report: orders confirmed and fulfilled the order in the same call (ADR 0019).
    assert [line["event"] for line in logged] == ["order_fulfilled"]
    assert [r.body for r in fake_orders.requests] == [{"payment": "paid"}]
    assert all(line["job"] == FULFIL_ORDER for line in logged)


async def test_a_declined_payment_fails_the_order(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings(fulfil={"failure_rate": 1.0}))

    assert await outcome(job) == (True, "failed", 1)
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.failed"]
    assert fake_orders.events[-1]["reason"] == "payment_declined"


async def test_the_payment_outcome_comes_from_the_injected_generator(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    paid, declined = fake_orders.add_order(), fake_orders.add_order()
    settings = make_settings(fulfil={"failure_rate": 0.5})
    # One burst per job: two jobs queued in the same millisecond share a score, and
    # arq would take them in either order, handing each the other's draw.
    first = await enqueue_fulfil(arq_pool, paid, queue_name)
    await run_worker(settings, rng=ScriptedRandom(0.9))
    second = await enqueue_fulfil(arq_pool, declined, queue_name)
    await run_worker(settings, rng=ScriptedRandom(0.1))

    assert (await outcome(first))[1] == "fulfilled"
    assert (await outcome(second))[1] == "failed"


async def test_an_order_that_is_already_past_fulfilment_is_left_alone(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_lines = capture_logs(monkeypatch)
    cancelled = fake_orders.add_order(status="cancelled")
    job = await enqueue_fulfil(arq_pool, cancelled, queue_name)

    await run_worker(make_settings(log={"json_output": True}))

    assert await outcome(job) == (True, "already_done", 1)
    assert fake_orders.events == []
    # The one report is refused, and the charge it was made with is released.
    assert [r.status for r in fake_orders.calls_to("/fulfilment")] == [409]
    events = [line["event"] for line in log_lines() if line.get("order_id") == cancelled]
    assert events[-2:] == ["order_already_done", "payment_voided"]


async def test_a_confirmed_order_from_an_interrupted_run_is_finished(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order(status="confirmed")
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings())

    assert await outcome(job) == (True, "fulfilled", 1)
    assert fake_orders.event_types(order_id) == ["order.fulfilled"]


async def test_an_order_that_no_longer_exists_is_done(
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_lines = capture_logs(monkeypatch)
    job = await enqueue_fulfil(arq_pool, "0d4f7c1e-missing", queue_name)

    worker = await run_worker(make_settings(log={"json_output": True}))

    assert await outcome(job) == (True, "gone", 1)
    assert worker.jobs_retried == 0
    assert any(
        line["event"] == "order_gone" and line.get("order_id") == "0d4f7c1e-missing"
        for line in log_lines()
    )


async def test_an_order_deleted_while_it_is_charged_is_done(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()

    class DeletingRandom(ScriptedRandom):
        def random(self) -> float:
            del fake_orders.orders[order_id]
            return 0.9

    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings(), rng=DeletingRandom())

    assert await outcome(job) == (True, "gone", 1)
    assert fake_orders.events == []


# --- safe to run twice -----------------------------------------------------------------


async def test_running_the_job_twice_moves_the_order_once(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    settings = make_settings()
    first = await enqueue_fulfil(arq_pool, order_id, queue_name)
    await run_worker(settings)
    # The same logical job again is refused while its result is kept ...
    assert (
        await enqueue(
            arq_pool,
            FULFIL_ORDER,
            order_id,
            job_id=job_id_for(FULFIL_ORDER, order_id),
            queue_name=queue_name,
        )
        is None
    )
    # ... and a second run under another id (a redelivery) changes nothing: its report
    # is the one orders already applied, answered with the fulfilled order.
    second = await enqueue_fulfil(arq_pool, order_id, queue_name, job_id="redelivered")
    await run_worker(settings)

    assert (await outcome(first))[1] == "fulfilled"
    assert (await outcome(second))[1] == "fulfilled"
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]


async def test_two_concurrent_runs_move_the_order_once(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    jobs = [
        await enqueue_fulfil(arq_pool, order_id, queue_name, job_id=f"run-{n}") for n in range(2)
    ]

    await run_worker(make_settings(fulfil={"latency_seconds": 0.05}), max_jobs=2)

    results = sorted([(await outcome(job))[1] for job in jobs])
    assert results == ["fulfilled", "fulfilled"]
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]
    # Both runs went all the way: each asked for the final state, orders applied it once.
    reports = fake_orders.calls_to("/fulfilment")
    assert [(r.body, r.status) for r in reports] == [({"payment": "paid"}, 200)] * 2


async def test_concurrent_runs_that_disagree_leave_the_first_outcome(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    jobs = [
        await enqueue_fulfil(arq_pool, order_id, queue_name, job_id=f"run-{n}") for n in range(2)
    ]

    await run_worker(
        make_settings(fulfil={"latency_seconds": 0.05, "failure_rate": 0.5}),
        rng=ScriptedRandom(0.9, 0.1),
        max_jobs=2,
    )

    results = sorted([(await outcome(job))[1] for job in jobs])
    types = fake_orders.event_types(order_id)
    assert types[0] == "order.confirmed"
    assert len(types) == 2
    assert types[1] in {"order.fulfilled", "order.failed"}
    assert results == sorted(["already_done", types[1].removeprefix("order.")])
    assert [r.status for r in fake_orders.calls_to("/fulfilment")].count(409) == 1


# --- transient failures ---------------------------------------------------------------


async def test_orders_503_twice_is_absorbed_by_the_client_retries(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    fake_orders.fail_with.extend([503, 503])
    retries = sample("http_client_retries_total", upstream="orders", reason="status_503")
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings())

    assert await outcome(job) == (True, "fulfilled", 1)
    assert sample("http_client_retries_total", upstream="orders", reason="status_503") == (
        retries + 2
    )
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]


async def test_orders_down_longer_than_the_client_retries_reschedules_the_job(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    fake_orders.fail_with.extend([503, 503, 503])
    retried = sample("job_outcomes_total", task=FULFIL_ORDER, outcome="retry")
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    worker = await run_worker(make_settings())

    assert await outcome(job) == (True, "fulfilled", 2)
    assert worker.jobs_retried == 1
    assert sample("job_outcomes_total", task=FULFIL_ORDER, outcome="retry") == retried + 1
    assert fake_orders.event_types(order_id) == ["order.confirmed", "order.fulfilled"]


async def test_the_job_gives_up_after_max_tries(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_lines = capture_logs(monkeypatch)
    order_id = fake_orders.add_order()
    fake_orders.fail_with.extend([503] * 6)
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    worker = await run_worker(
        make_settings(
            fulfil={"max_tries": 2},
            log={"json_output": True},
            upstreams={"orders": {"breaker_failure_threshold": 10}},
        )
    )

    success, error, tries = await outcome(job)
    assert (success, tries) == (False, 2)
    assert str(error) == (
        "gave up after 2 attempts: TransientOrdersError: orders answered 503: Service Unavailable"
    )
    assert worker.jobs_retried == 1
    assert fake_orders.status_of(order_id) == "pending"
    [gave_up] = [line for line in log_lines() if line["event"] == "order_fulfil_gave_up"]
    assert gave_up["order_id"] == order_id
    assert gave_up["attempt"] == 2


async def test_an_open_breaker_defers_the_retry_until_a_probe_is_allowed(
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker_until: Any,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        upstreams={
            "orders": {
                "base_url": down,
                "retry_attempts": 1,
                "breaker_failure_threshold": 1,
                "breaker_open_seconds": 30.0,
            }
        }
    )
    job = await enqueue_fulfil(arq_pool, "order-a", queue_name)
    started = time.time()

    async def deferred_past_the_breaker() -> bool:
        due = await arq_pool.zscore(queue_name, job.job_id)
        return due is not None and due / 1000 > started + 25

    # Attempt 1 finds orders down and opens the breaker (a short backoff); attempt 2
    # meets the open breaker and is put back until the breaker lets a probe through.
    worker = await run_worker_until(settings, deferred_past_the_breaker)

    assert (worker.jobs_failed, worker.jobs_retried) == (0, 2)
    assert await job.status() is JobStatus.deferred


async def test_refused_service_credentials_are_retried_then_fail(
    fake_users: FakeUsers,
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    await run_worker(make_settings(client_secret="wrong-secret", fulfil={"max_tries": 2}))

    success, error, tries = await outcome(job)
    assert (success, tries) == (False, 2)
    assert str(error) == (
        "gave up after 2 attempts: TokenUnavailable: "
        "service token unavailable (401): Invalid client credentials"
    )
    assert fake_users.token_requests == 2
    assert fake_orders.requests == []


async def test_a_request_orders_refuses_fails_the_job_without_retrying(
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    order_id = fake_orders.add_order()
    fake_orders.forbidden = True
    job = await enqueue_fulfil(arq_pool, order_id, queue_name)

    worker = await run_worker(make_settings())

    success, error, tries = await outcome(job)
    assert (success, tries) == (False, 1)
    assert str(error) == "orders answered 403: Missing scope orders:internal."
    assert worker.jobs_retried == 0


# --- the service token ----------------------------------------------------------------


async def test_jobs_share_one_service_token_and_replace_it_when_orders_refuses_it(
    fake_users: FakeUsers,
    fake_orders: FakeOrders,
    make_settings: Callable[..., WorkerSettings],
    arq_pool: ArqRedis,
    queue_name: str,
    run_worker: Any,
) -> None:
    orders = [fake_orders.add_order() for _ in range(3)]
    settings = make_settings()
    for order_id in orders[:2]:
        await enqueue_fulfil(arq_pool, order_id, queue_name)

    class RevokingRandom(ScriptedRandom):
        """Revokes the token in use during the third job, as a key rotation would."""

        def random(self) -> float:
            if len(self.values) == 1:
                fake_users.revoke_all()
            return super().random()

    await enqueue_fulfil(arq_pool, orders[2], queue_name)
    await run_worker(settings, rng=RevokingRandom(0.9, 0.9, 0.9), max_jobs=1)

    assert [fake_orders.status_of(order_id) for order_id in orders] == ["fulfilled"] * 3
    assert fake_users.token_requests == 2
    assert [r.status for r in fake_orders.requests].count(401) == 1
    authorizations = {r.authorization for r in fake_orders.requests if r.status == 200}
    assert authorizations == {"Bearer svc-token-1", "Bearer svc-token-2"}


# --- backoff --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 30.0, 60.0)],
)
def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(
    attempt: int, low: float, high: float
) -> None:
    rng = random.Random(attempt)
    delays = [retry_delay(attempt, initial=1.0, maximum=60.0, rng=rng) for _ in range(50)]

    assert all(low <= delay <= high for delay in delays)
    assert len(set(delays)) > 1
