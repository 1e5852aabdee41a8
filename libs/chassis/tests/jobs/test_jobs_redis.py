"""The worker's Redis connection: where it connects, and how it waits out an outage."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, create_worker
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from chassis.jobs import enqueue, job, worker_settings
from chassis.jobs_redis import adopt_redis_settings, redis_settings_for
from chassis.settings import BaseServiceSettings
from chassis.task_dump import coroutine_frames
from chassis.testing import eventually
from chassis.testing.faultproxy import FaultProxy
from chassis.testing.jobs import close_worker

#: Short enough that an outage of a few seconds spans many timed-out tries.
SOCKET_TIMEOUT = 0.2


@pytest.fixture
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test's Redis."""
    target = urlsplit(redis_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy


def settings_via(proxy: FaultProxy, redis_url: str, tmp_path: Path) -> BaseServiceSettings:
    return BaseServiceSettings(
        service_name="outage",
        redis={
            "url": f"redis://{proxy.address}{urlsplit(redis_url).path}",
            "socket_timeout_seconds": SOCKET_TIMEOUT,
            "connect_timeout_seconds": SOCKET_TIMEOUT,
        },
        data_dir=tmp_path / "data",
    )


def queue() -> str:
    return f"test:queue:{uuid.uuid4().hex[:8]}"


def start(
    settings: BaseServiceSettings, functions: list[Any], *, queue_name: str, **options: Any
) -> tuple[Worker, asyncio.Task[None]]:
    settings_cls = worker_settings(
        settings,
        functions=functions,
        queue_name=queue_name,
        database=False,
        poll_delay=0.01,
        **options,
    )
    worker = create_worker(settings_cls, handle_signals=False)
    return worker, asyncio.create_task(worker.async_run())


async def stop(worker: Worker, running: asyncio.Task[None]) -> None:
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await close_worker(worker)


async def polling(*workers: Worker) -> None:
    """Until each worker's start-up hook has given its pool the command timeout.

    Before that, arq's pool has none (arq passes no socket timeout): a blackhole
    begun while a slow machine was still starting the worker would hang its
    start-up INFO forever, which is arq's start-up, not the outage handling under test.
    """
    await eventually(lambda: all("settings" in worker.ctx for worker in workers), within=30)
    await asyncio.sleep(0.1)  # a poll or two through the proxy


async def job_done(worker: Worker) -> None:
    # Counted as complete before its result is written: wait for the task to end too,
    # or cancelling the worker cancels the write and close() re-raises it.
    await eventually(
        lambda: worker.jobs_complete == 1 and all(task.done() for task in worker.tasks.values()),
        within=20,
    )


def test_arq_connects_where_the_settings_say() -> None:
    settings = BaseServiceSettings(
        redis={"url": "redis://:pw@cache.internal:6380/4", "connect_timeout_seconds": 2.5}
    )

    redis = redis_settings_for(settings)

    assert (redis.host, redis.port, redis.database, redis.password) == (
        "cache.internal",
        6380,
        4,
        "pw",
    )
    assert redis.conn_timeout == 3
    assert redis.max_connections == settings.redis.max_connections


async def test_a_worker_waits_out_a_redis_outage_instead_of_exiting(
    arq_pool: ArqRedis, redis_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    name = f"test.after_outage.{uuid.uuid4().hex[:8]}"
    queue_name = queue()
    ran: list[bool] = []

    @job(name)
    async def after_outage(ctx: dict[str, Any]) -> None:
        ran.append(True)

    worker, running = start(
        settings_via(proxy, redis_url, tmp_path), [after_outage], queue_name=queue_name
    )
    try:
        await polling(worker)
        proxy.down()  # refused and cut: arq's poll loop would raise and end the worker
        await asyncio.sleep(1.0)
        assert not running.done(), running.exception()
        proxy.up()
        await enqueue(arq_pool, name, queue_name=queue_name)
        await job_done(worker)
        assert ran == [True]
    finally:
        await stop(worker, running)


async def test_a_blackholed_redis_pauses_the_worker_for_as_long_as_it_lasts(
    arq_pool: ArqRedis, redis_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Packets dropped: only timeouts tell. A worker given a budget gives up once it is spent
    (so its commands did time out); one given none waits, and works again after the heal."""
    name = f"test.after_blackhole.{uuid.uuid4().hex[:8]}"
    patient_queue, bounded_queue = queue(), queue()
    ran: list[bool] = []

    @job(name)
    async def after_blackhole(ctx: dict[str, Any]) -> None:
        ran.append(True)

    settings = settings_via(proxy, redis_url, tmp_path)
    patient, patient_running = start(settings, [after_blackhole], queue_name=patient_queue)
    bounded, bounded_running = start(
        settings, [after_blackhole], queue_name=bounded_queue, redis_outage_seconds=1.0
    )
    try:
        await polling(patient, bounded)
        proxy.blackhole()
        await eventually(bounded_running.done, within=30, message="the budget never ran out")
        assert isinstance(bounded_running.exception(), RedisTimeoutError)
        await asyncio.sleep(2.0)  # the patient one keeps waiting, well past the budget
        assert not patient_running.done(), patient_running.exception()
        proxy.heal()
        await enqueue(arq_pool, name, queue_name=patient_queue)
        await job_done(patient)
        assert ran == [True]
    finally:
        proxy.heal()  # the bounded worker's close() talks to Redis too
        await stop(patient, patient_running)
        with contextlib.suppress(RedisTimeoutError):
            await stop(bounded, bounded_running)


async def test_a_command_waits_out_a_blackhole_even_on_a_connection_closed_by_it(
    redis_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A cancelled command leaves a closed connection in the pool; the next command gets it
    outside any command's retry, and its reconnect's handshake gets no answer either."""
    settings = settings_via(proxy, redis_url, tmp_path)
    pool = await create_pool(redis_settings_for(settings))
    try:
        await adopt_redis_settings(pool, settings)
        assert await pool.ping()
        proxy.blackhole()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SOCKET_TIMEOUT / 2):
                await pool.ping()  # given up by its caller, as a readiness check does
        written = asyncio.create_task(pool.set("after-blackhole", b"kept"))
        await asyncio.sleep(2.0)  # many socket timeouts
        assert not written.done(), written.exception()
        proxy.heal()
        async with asyncio.timeout(20):
            assert await written
        assert await pool.get("after-blackhole") == b"kept"
    finally:
        await pool.aclose()


async def test_a_command_cancelled_at_any_moment_ends_cancelled(
    redis_url: str, tmp_path: Path
) -> None:
    """A cancel that lands while a command is under way must never be lost.

    Python 3.11's asyncio.wait_for (redis-py's write path once a socket timeout is set)
    returns the result instead when its inner task finished in the same loop turn: arq's
    close() cancels the poll loop once, and a lost cancel left it polling a closed pool.
    """
    settings = BaseServiceSettings(
        service_name="cancel",
        redis={"url": redis_url, "socket_timeout_seconds": 5.0},
        data_dir=tmp_path / "data",
    )
    pool = await create_pool(redis_settings_for(settings))
    lost: list[int] = []
    try:
        await adopt_redis_settings(pool, settings)
        assert await pool.ping()
        for turns in range(12):
            for _ in range(5):
                command = asyncio.create_task(pool.set("cancel-probe", b"x"))
                for _ in range(turns):
                    await asyncio.sleep(0)
                if command.done():
                    break
                command.cancel()
                await asyncio.gather(command, return_exceptions=True)
                if not command.cancelled():
                    lost.append(turns)
    finally:
        await pool.aclose()

    assert lost == [], f"cancels lost after these many loop turns: {lost}"


@pytest.mark.parametrize("changed_meanwhile", [False, True])
async def test_a_watch_outlives_a_blackhole_and_still_guards_its_transaction(
    redis_url: str, proxy: FaultProxy, tmp_path: Path, changed_meanwhile: bool
) -> None:
    """arq claims a job with WATCH, reads, then MULTI/EXEC; a read whose connection a
    blackhole takes used to raise WatchError out of arq's poll loop, ending the worker.
    The read waits out the outage instead, and the EXEC still fails if the watched key
    changed in the meantime (then nothing of the transaction is applied)."""
    settings = settings_via(proxy, redis_url, tmp_path)
    pool = await create_pool(redis_settings_for(settings))
    direct = await create_pool(RedisSettings.from_dsn(redis_url))
    watched, claimed = f"watched:{uuid.uuid4().hex[:8]}", f"claimed:{uuid.uuid4().hex[:8]}"
    try:
        await adopt_redis_settings(pool, settings)
        async with pool.pipeline(transaction=True) as pipe:
            await pipe.watch(watched)
            assert await pipe.exists(watched) == 0
            proxy.blackhole()
            read = asyncio.create_task(pipe.get(claimed))
            await asyncio.sleep(SOCKET_TIMEOUT * 5)  # the read's connection is given up
            assert not read.done(), read.exception()
            if changed_meanwhile:
                await direct.set(watched, b"taken elsewhere")
            proxy.heal()
            async with asyncio.timeout(20):
                assert await read is None
            pipe.multi()
            pipe.set(claimed, b"mine")
            if changed_meanwhile:
                with pytest.raises(WatchError):
                    await pipe.execute()
            else:
                assert await pipe.execute() == [True]
        assert await direct.get(claimed) == (None if changed_meanwhile else b"mine")
    finally:
        proxy.heal()
        await direct.aclose()
        await pool.aclose()


@pytest.mark.parametrize("ending", ["no answer", "cancelled"])
async def test_a_watching_pipeline_s_reset_gives_its_connection_back_whatever_ends_it(
    redis_url: str, proxy: FaultProxy, tmp_path: Path, ending: str
) -> None:
    """The reset that ends arq's claim sends UNWATCH; with no answer (redis-py catches only
    ConnectionError there) or a cancel in the middle (a worker stopping), redis-py kept the
    connection out of the pool for good: "Unclosed client session" once collected."""
    settings = settings_via(proxy, redis_url, tmp_path)
    pool = await create_pool(redis_settings_for(settings, outage_seconds=1.0))
    try:
        await adopt_redis_settings(pool, settings)
        pipe = pool.pipeline(transaction=True)
        await pipe.watch(f"watched:{uuid.uuid4().hex[:8]}")
        proxy.blackhole()
        reset = asyncio.create_task(pipe.reset())
        if ending == "cancelled":
            await asyncio.sleep(SOCKET_TIMEOUT / 2)
            reset.cancel()
        await asyncio.gather(reset, return_exceptions=True)
        assert reset.cancelled() == (ending == "cancelled")
        assert pipe.connection is None
        assert not pipe.watching
        assert not pool.connection_pool._in_use_connections
        proxy.heal()
        async with asyncio.timeout(20):
            assert await pool.ping()  # the connection given back works again
    finally:
        proxy.heal()
        await pool.aclose()


async def test_a_long_blackhole_does_not_deepen_a_waiting_command(
    redis_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """With the health check due, each reconnect of an outage pinged from inside the
    handshake of the one before: the waiting command's chain of coroutines grew by one
    level per try, and a 70 s blackhole ended arq's poll loop with RecursionError."""
    target = urlsplit(redis_url)
    settings = BaseServiceSettings(
        service_name="outage",
        redis={
            "url": f"redis://{proxy.address}{target.path}",
            "socket_timeout_seconds": SOCKET_TIMEOUT,
            "connect_timeout_seconds": SOCKET_TIMEOUT,
            "health_check_interval_seconds": 1,
        },
        data_dir=tmp_path / "data",
    )
    pool = await create_pool(redis_settings_for(settings))
    try:
        await adopt_redis_settings(pool, settings)
        assert await pool.ping()
        await asyncio.sleep(1.2)  # the health check is due on the connection's next use
        proxy.blackhole()
        command = asyncio.create_task(pool.ping())
        early: list[int] = []
        late: list[int] = []
        started = asyncio.get_running_loop().time()
        while (elapsed := asyncio.get_running_loop().time() - started) < 8.0:
            depth = len(list(coroutine_frames(command.get_coro())))
            (early if elapsed < 2.0 else late).append(depth)
            await asyncio.sleep(0.02)
        assert not command.done(), command.exception()
        assert max(late) <= max(early) + 3, (max(early), max(late))
        proxy.heal()
        async with asyncio.timeout(20):
            assert await command
    finally:
        proxy.heal()
        await pool.aclose()
