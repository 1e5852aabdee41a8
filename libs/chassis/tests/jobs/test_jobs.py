from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Retry, Worker, create_worker
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text

from chassis.context import request_id_var
from chassis.jobs import (
    cron_job,
    enqueue,
    job,
    job_id_for,
    update_queue_depth,
    worker_settings,
)
from chassis.settings import BaseServiceSettings
from chassis.testing.jobs import close_worker
from chassis.testing.jobs import run_burst as run_worker_burst


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def unique(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
def queue() -> str:
    return f"test:queue:{uuid.uuid4().hex[:8]}"


def sampled_remote_parent() -> tuple[otel_context.Context, SpanContext]:
    """An incoming, sampled trace: the job span must be its child whatever the local sampler."""
    parent = SpanContext(
        trace_id=uuid.uuid4().int >> 1,
        span_id=uuid.uuid4().int >> 65,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent)), parent


async def run_burst(redis_url: str, queue: str, functions: list[Any], **options: Any) -> Worker:
    return await run_worker_burst(
        Worker(
            functions=functions,
            redis_settings=RedisSettings.from_dsn(redis_url),
            queue_name=queue,
            burst=True,
            handle_signals=False,
            poll_delay=0.01,
            **options,
        )
    )


def test_job_ids_are_deterministic_per_name_and_parts() -> None:
    first = job_id_for("orders.fulfil", 42)

    assert first == job_id_for("orders.fulfil", "42")
    assert first.startswith("orders.fulfil:")
    assert first != job_id_for("orders.fulfil", 43)
    assert first != job_id_for("orders.cancel", 42)
    assert job_id_for("x", "a:b", "c") != job_id_for("x", "a", "b:c")


async def test_enqueueing_the_same_logical_job_twice_queues_it_once(
    arq_pool: ArqRedis, redis_url: str, queue: str
) -> None:
    job_id = job_id_for("orders.fulfil", 7)

    first = await enqueue(arq_pool, "orders.fulfil", 7, job_id=job_id, queue_name=queue)
    plain = Redis.from_url(redis_url)
    try:
        second = await enqueue(plain, "orders.fulfil", 7, job_id=job_id, queue_name=queue)
    finally:
        await plain.aclose()

    assert first is not None
    assert first.job_id == job_id
    assert second is None
    queued = await arq_pool.queued_jobs(queue_name=queue)
    assert [entry.job_id for entry in queued] == [job_id]
    assert queued[0].args == (7,)
    assert set(queued[0].kwargs) == {"_meta"}


async def test_a_job_runs_with_the_request_id_under_the_enqueuing_trace(
    arq_pool: ArqRedis, redis_url: str, queue: str, span_exporter: Any
) -> None:
    name = unique("test.record")
    seen: dict[str, Any] = {}

    @job(name)
    async def record(ctx: dict[str, Any], order_id: int, *, note: str) -> str:
        seen["args"] = (order_id, note)
        seen["request_id"] = request_id_var.get()
        seen["log_context"] = structlog.contextvars.get_contextvars()
        seen["job_try"] = ctx["job_try"]
        return "done"

    parent_context, parent = sampled_remote_parent()
    request_token = request_id_var.set("req-123")
    attach_token = otel_context.attach(parent_context)
    try:
        await enqueue(arq_pool, name, 5, note="hi", queue_name=queue, job_id="job-1")
    finally:
        otel_context.detach(attach_token)
        request_id_var.reset(request_token)
    successes = sample("job_outcomes_total", task=name, outcome="success")
    durations = sample("job_duration_seconds_count", task=name)

    await run_burst(redis_url, queue, [record])

    assert seen["args"] == (5, "hi")
    assert seen["request_id"] == "req-123"
    assert seen["log_context"] == {
        "job": name,
        "job_id": "job-1",
        "job_try": 1,
        "request_id": "req-123",
    }
    assert request_id_var.get() is None
    [span] = [s for s in span_exporter.get_finished_spans() if s.name == name]
    assert span.kind is SpanKind.CONSUMER
    assert span.context.trace_id == parent.trace_id
    assert span.parent is not None
    assert span.parent.span_id == parent.span_id
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == "job-1"
    assert sample("job_outcomes_total", task=name, outcome="success") == successes + 1
    assert sample("job_duration_seconds_count", task=name) == durations + 1


async def test_outcomes_are_counted_as_success_retry_and_failed(
    arq_pool: ArqRedis, redis_url: str, queue: str, span_exporter: Any
) -> None:
    flaky_name, broken_name = unique("test.flaky"), unique("test.broken")

    @job(flaky_name)
    async def flaky(ctx: dict[str, Any]) -> None:
        if ctx["job_try"] == 1:
            raise Retry(defer=0)

    @job(broken_name, max_tries=1)
    async def broken(ctx: dict[str, Any]) -> None:
        raise ValueError("bad input")

    await enqueue(arq_pool, flaky_name, queue_name=queue)
    await enqueue(arq_pool, broken_name, queue_name=queue)
    await run_burst(redis_url, queue, [flaky, broken])

    assert sample("job_outcomes_total", task=flaky_name, outcome="retry") == 1
    assert sample("job_outcomes_total", task=flaky_name, outcome="success") == 1
    assert sample("job_outcomes_total", task=broken_name, outcome="failed") == 1
    assert sample("job_duration_seconds_count", task=flaky_name) == 2
    failed = [s for s in span_exporter.get_finished_spans() if s.name == broken_name]
    if failed:  # recorded unless the session's sampler dropped this root span
        assert failed[0].status.status_code is StatusCode.ERROR
        assert failed[0].events[0].name == "exception"


async def test_a_cancelled_job_is_counted_as_cancelled(
    arq_pool: ArqRedis, redis_url: str, queue: str
) -> None:
    name = unique("test.slow")

    @job(name, timeout=0.05)
    async def slow(ctx: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    await enqueue(arq_pool, name, queue_name=queue)
    await run_burst(redis_url, queue, [slow])

    assert sample("job_outcomes_total", task=name, outcome="cancelled") == 1


async def test_a_job_enqueued_without_context_runs_without_a_request_id(
    arq_pool: ArqRedis, redis_url: str, queue: str
) -> None:
    name = unique("test.bare")
    seen: list[Any] = []

    @job(name)
    async def bare(ctx: dict[str, Any], value: int) -> None:
        seen.append((value, request_id_var.get()))

    await arq_pool.enqueue_job(name, 1, _queue_name=queue)
    await arq_pool.enqueue_job(name, 2, _queue_name=queue, _meta="garbage")
    await run_burst(redis_url, queue, [bare])

    assert sorted(seen) == [(1, None), (2, None)]


async def test_cron_jobs_get_the_same_instrumentation(redis_url: str, queue: str) -> None:
    name = unique("test.cron")
    runs: list[str | None] = []

    async def tick(ctx: dict[str, Any]) -> None:
        runs.append(request_id_var.get())

    await run_burst(
        redis_url,
        queue,
        [],
        # Only the start-up run: arq's default schedule (every minute at second 0) ran it a
        # second time whenever the burst straddled a minute; this hour is half a day away.
        cron_jobs=[
            cron_job(name, tick, run_at_startup=True, hour=(time.localtime().tm_hour + 12) % 24)
        ],
    )

    assert runs == [None]
    assert sample("job_outcomes_total", task=name, outcome="success") == 1


async def test_queue_depth_is_the_size_of_the_queue(arq_pool: ArqRedis, queue: str) -> None:
    for n in range(3):
        await arq_pool.enqueue_job("anything", n, _queue_name=queue)

    assert await update_queue_depth(arq_pool, queue) == 3
    assert sample("queue_depth", queue=queue) == 3


async def test_worker_settings_give_arq_a_worker_with_logging_database_and_hooks(
    arq_pool: ArqRedis, redis_url: str, postgres_url: str, queue: str
) -> None:
    settings = BaseServiceSettings(
        service_name="jobs-test",
        redis={"url": redis_url},
        database={"url": postgres_url},
        server={"graceful_timeout_seconds": 7.5},
    )
    name = unique("test.db")
    events: list[str] = []

    @job(name)
    async def query(ctx: dict[str, Any]) -> int:
        async with ctx["db"]() as session:
            value = await session.scalar(text("SELECT 41 + 1"))
        events.append(f"job:{value}")
        return int(value)

    async def on_startup(ctx: dict[str, Any]) -> None:
        events.append("startup:" + ctx["settings"].service_name)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        events.append("shutdown")

    settings_cls = worker_settings(
        settings,
        functions=[query],
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        queue_name=queue,
        max_jobs=3,
        queue_depth_interval=0.01,
    )
    assert settings_cls.__name__ == "WorkerSettings"
    assert settings_cls.job_completion_wait == 8  # type: ignore[attr-defined]
    assert settings_cls.redis_settings.database == RedisSettings.from_dsn(redis_url).database  # type: ignore[attr-defined]
    await enqueue(arq_pool, name, queue_name=queue)

    worker = create_worker(settings_cls, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await worker.async_run()
        await asyncio.sleep(0.02)  # one queue-depth sample after the queue drained
    finally:
        await close_worker(worker)

    assert worker.max_jobs == 3
    assert events == ["startup:jobs-test", "job:42", "shutdown"]
    assert sample("queue_depth", queue=queue) == 0


async def test_a_worker_without_a_database_opens_none(
    arq_pool: ArqRedis, redis_url: str, queue: str, tmp_path: Any
) -> None:
    settings = BaseServiceSettings(
        service_name="no-db", redis={"url": redis_url}, data_dir=tmp_path / "data"
    )
    name = unique("test.stateless")
    seen: list[set[str]] = []

    @job(name)
    async def stateless(ctx: dict[str, Any]) -> None:
        seen.append({"database", "db"} & set(ctx))

    settings_cls = worker_settings(
        settings, functions=[stateless], queue_name=queue, database=False
    )
    await enqueue(arq_pool, name, queue_name=queue)

    worker = create_worker(settings_cls, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await worker.async_run()
    finally:
        await close_worker(worker)

    assert seen == [set()]
    assert not (tmp_path / "data").exists()


async def test_close_ends_a_start_up_that_outlived_its_cancel_before_shutting_down(
    redis_url: str, queue: str, tmp_path: Any
) -> None:
    """arq's close() cancels its main task once: the shutdown hook must not run, nor the pool
    close, while that task (here a start-up that loses the first cancel) goes on."""
    settings = BaseServiceSettings(
        service_name="late-start", redis={"url": redis_url}, data_dir=tmp_path / "data"
    )
    starting = asyncio.Event()
    events: list[str] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        starting.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("first cancel lost")  # as a cancel lost deep in a library would be
        await asyncio.sleep(30)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        events.append("shutdown, main task " + ("ended" if main.done() else "running"))

    @job(unique("test.never_run"))
    async def never_run(ctx: dict[str, Any]) -> None:
        raise AssertionError("no job is enqueued")

    settings_cls = worker_settings(
        settings,
        functions=[never_run],
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        queue_name=queue,
        database=False,
    )
    worker = create_worker(settings_cls, handle_signals=False, poll_delay=0.01)
    main = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(starting.wait(), 10)
    async with asyncio.timeout(10):
        await close_worker(worker)
        await asyncio.gather(main, return_exceptions=True)

    assert events == ["first cancel lost", "shutdown, main task ended"]
    assert main.cancelled()
