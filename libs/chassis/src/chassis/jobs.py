"""Arq helpers: enqueue with deterministic ids and context, instrumented jobs, worker settings.

A job enqueued with `enqueue` carries one extra keyword argument, ``_meta``
(request id and W3C trace context). Functions declared with `job` (or
`cron_job`) strip it, restore the request id, run under a CONSUMER span that
continues the enqueuing trace, and count their outcome and duration.
`worker_settings` builds the class ``arq`` runs, wiring logging, tracing, the
database and the queue-depth gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from arq.connections import ArqRedis
from arq.constants import default_queue_name
from arq.cron import CronJob, cron
from arq.jobs import Job
from arq.typing import WorkerCoroutine
from arq.worker import Function, Retry, func
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio import Redis

from chassis.context import get_request_id, request_id_var
from chassis.heap import freeze_startup_heap
from chassis.jobs_redis import adopt_redis_settings, redis_settings_for
from chassis.logging import configure_logging
from chassis.metrics.registry import JOB_DURATION, JOB_OUTCOMES, QUEUE_DEPTH
from chassis.settings import BaseServiceSettings
from chassis.task_dump import install_task_dump
from chassis.tracing import configure_tracing
from chassis.tracing.propagation import extract_trace_context, inject_trace_context

if TYPE_CHECKING:
    from chassis.database.session import Database

logger = structlog.get_logger("chassis.jobs")

#: The keyword argument that carries request id and trace context to the worker.
META_KWARG = "_meta"

#: What a job function looks like: arq's ``ctx`` first, then the enqueued arguments.
JobFunction = Callable[..., Awaitable[Any]]
#: A worker start-up or shutdown hook, given arq's ``ctx``.
WorkerHook = Callable[[dict[str, Any]], Awaitable[None]]


def job_id_for(name: str, *parts: object) -> str:
    """A job id that is the same for the same logical job, so arq enqueues it once.

    ``job_id_for("orders.fulfil", order_id)``: parts are compared by their
    string form.
    """
    key = json.dumps([name, *(str(part) for part in parts)], separators=(",", ":"))
    return f"{name}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def job_meta() -> dict[str, Any]:
    """The context a job should run in: this request's id and trace context."""
    return {"request_id": get_request_id(), "trace": inject_trace_context()}


async def enqueue(
    redis: ArqRedis | Redis,
    name: str,
    *args: Any,
    job_id: str | None = None,
    defer_by: float | timedelta | None = None,
    queue_name: str | None = None,
    **kwargs: Any,
) -> Job | None:
    """Enqueue job `name` with the current request id and trace context.

    Returns None when a job with `job_id` is already queued, running, or kept
    as a result (arq's uniqueness). A plain client is wrapped over its pool,
    which must return bytes (``decode_responses=False``) as arq expects.
    The function must be declared with `job` so that it accepts ``_meta``.
    """
    pool = redis if isinstance(redis, ArqRedis) else ArqRedis(pool_or_conn=redis.connection_pool)
    queued = await pool.enqueue_job(
        name,
        *args,
        _job_id=job_id,
        _defer_by=defer_by,
        _queue_name=queue_name,
        _meta=job_meta(),
        **kwargs,
    )
    if queued is None:
        logger.info("job_already_enqueued", job=name, job_id=job_id)
    return queued


def instrument_job(name: str, function: JobFunction) -> WorkerCoroutine:
    """Wrap `function` so that each run restores context, is traced and is measured."""

    @functools.wraps(function)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        meta = kwargs.pop(META_KWARG, None)
        if not isinstance(meta, Mapping):
            meta = {}
        request_id = meta.get("request_id") or None
        carrier = meta.get("trace") if isinstance(meta.get("trace"), Mapping) else None
        job_id = str(ctx.get("job_id", ""))
        job_try = int(ctx.get("job_try") or 1)
        request_token = request_id_var.set(request_id)
        bound: dict[str, Any] = {"job": name, "job_id": job_id, "job_try": job_try}
        if request_id is not None:
            bound["request_id"] = request_id
        log_tokens = structlog.contextvars.bind_contextvars(**bound)
        tracer = trace.get_tracer("chassis.jobs")
        outcome = "failed"
        started = time.perf_counter()
        try:
            with tracer.start_as_current_span(
                name,
                context=extract_trace_context(carrier),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "arq",
                    "messaging.operation.type": "process",
                    "messaging.message.id": job_id,
                    "arq.job_try": job_try,
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    result = await function(ctx, *args, **kwargs)
                except Retry as exc:
                    outcome = "retry"
                    span.add_event("retry", {"defer_ms": exc.defer_score or 0})
                    raise
                except asyncio.CancelledError:
                    # Shutdown (arq re-queues the job) or the job timeout (arq fails it).
                    outcome = "cancelled"
                    raise
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
                outcome = "success"
                return result
        finally:
            JOB_DURATION.labels(task=name).observe(time.perf_counter() - started)
            JOB_OUTCOMES.labels(task=name, outcome=outcome).inc()
            structlog.contextvars.reset_contextvars(**log_tokens)
            request_id_var.reset(request_token)

    return run


def job(
    name: str,
    *,
    timeout: float | timedelta | None = None,
    max_tries: int | None = None,
    keep_result: float | timedelta | None = None,
) -> Callable[[JobFunction], Function]:
    """Declare an arq job named `name` (dotted: ``orders.fulfil``) for `worker_settings`.

    The result is arq's `Function`; the undecorated coroutine is its ``coroutine.__wrapped__``.
    """

    def declare(function: JobFunction) -> Function:
        return func(
            instrument_job(name, function),
            name=name,
            timeout=timeout,
            max_tries=max_tries,
            keep_result=keep_result,
        )

    return declare


def cron_job(name: str, function: JobFunction, **schedule: Any) -> CronJob:
    """An arq cron job with the same instrumentation; `schedule` is `arq.cron.cron`'s keywords."""
    return cron(instrument_job(name, function), name=name, **schedule)


async def update_queue_depth(redis: Redis, queue_name: str = default_queue_name) -> int:
    """Set the queue-depth gauge from the queue's sorted set; return the depth."""
    depth = int(await redis.zcard(queue_name))
    QUEUE_DEPTH.labels(queue=queue_name).set(depth)
    return depth


#: Where start-up keeps arq's main task (the one that runs start-up, then the poll loop).
_POLL_LOOP_KEY = "_chassis_poll_loop"


async def _end_poll_loop(ctx: dict[str, Any]) -> None:
    """Cancel arq's main task until it has ended, start-up included, and wait for it.

    arq's close() cancels it once and goes on to the shutdown hook and to closing
    the pool: a cancel lost beneath it (by a library's `asyncio.wait_for` on Python
    3.11) left it polling the closed pool, and a start-up still under way raced the
    shutdown that undoes it.
    """
    task: asyncio.Task[Any] | None = ctx.pop(_POLL_LOOP_KEY, None)
    if task is None or task is asyncio.current_task():
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


async def _report_queue_depth(redis: Redis, queue_name: str, interval: float) -> None:
    while True:
        try:
            await update_queue_depth(redis, queue_name)
        except Exception as exc:  # noqa: BLE001 - a missed sample must not end the reporter
            logger.warning("queue_depth_unavailable", queue=queue_name, error=str(exc))
        await asyncio.sleep(interval)


def worker_settings(
    settings: BaseServiceSettings,
    *,
    functions: Sequence[Function | JobFunction],
    cron_jobs: Sequence[CronJob] = (),
    on_startup: WorkerHook | None = None,
    on_shutdown: WorkerHook | None = None,
    queue_name: str = default_queue_name,
    max_jobs: int = 10,
    job_timeout: float = 300.0,
    max_tries: int = 5,
    keep_result: float = 3600.0,
    health_check_interval: float = 60.0,
    job_completion_wait: int | None = None,
    poll_delay: float = 0.5,
    queue_depth_interval: float = 15.0,
    database: bool = True,
    redis_outage_seconds: float = 0,
) -> type:
    """A ``WorkerSettings`` class for ``arq`` (``arq mypkg.worker.WorkerSettings``).

    Start-up configures logging and tracing, opens the database into
    ``ctx["database"]`` (`Database`) and ``ctx["db"]`` (its session maker)
    unless `database` is false (a worker that only calls other services),
    starts the queue-depth reporter, then runs `on_startup`. Shutdown runs
    `on_shutdown` first (once arq's poll loop, and a start-up still under way,
    has ended), then closes what start-up opened. On SIGTERM the
    worker stops taking jobs and waits `job_completion_wait` seconds (default:
    the server's graceful timeout) for running ones. A Redis out of reach
    pauses the worker for at least `redis_outage_seconds` (0: as long as it
    lasts) before the worker gives up and exits (`chassis.jobs_redis`).
    """

    async def startup(ctx: dict[str, Any]) -> None:
        ctx[_POLL_LOOP_KEY] = asyncio.current_task()
        await adopt_redis_settings(ctx["redis"], settings)
        configure_logging(settings)
        ctx["settings"] = settings
        install_task_dump()  # `kill -USR1`: what a stalled worker's coroutines wait on
        ctx["tracer_provider"] = configure_tracing(settings)
        if database:
            # Imported here: a worker without a database never loads SQLAlchemy.
            from chassis.database.session import Database

            opened = Database.from_settings(settings)
            ctx["database"] = opened
            ctx["db"] = opened.sessionmaker
        ctx["queue_depth_task"] = asyncio.create_task(
            _report_queue_depth(ctx["redis"], queue_name, queue_depth_interval),
            name="queue-depth",
        )
        logger.info("worker_started", queue=queue_name, max_jobs=max_jobs)
        if on_startup is not None:
            await on_startup(ctx)
        if settings.server.freeze_heap_after_startup:
            freeze_startup_heap()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await _end_poll_loop(ctx)
        try:
            if on_shutdown is not None:
                await on_shutdown(ctx)
        finally:
            task: asyncio.Task[None] | None = ctx.pop("queue_depth_task", None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            opened: Database | None = ctx.pop("database", None)
            if opened is not None:
                await opened.dispose()
            provider = ctx.pop("tracer_provider", None)
            if provider is not None:
                provider.shutdown()
            logger.info("worker_stopped", queue=queue_name)

    completion_wait = (
        job_completion_wait
        if job_completion_wait is not None
        else math.ceil(settings.server.graceful_timeout_seconds)
    )
    return type(
        "WorkerSettings",
        (),
        {
            "functions": list(functions),
            "cron_jobs": list(cron_jobs),
            "redis_settings": redis_settings_for(settings, outage_seconds=redis_outage_seconds),
            "queue_name": queue_name,
            "on_startup": startup,
            "on_shutdown": shutdown,
            "max_jobs": max_jobs,
            "job_timeout": job_timeout,
            "max_tries": max_tries,
            "keep_result": keep_result,
            "health_check_interval": health_check_interval,
            "job_completion_wait": completion_wait,
            "poll_delay": poll_delay,
        },
    )
