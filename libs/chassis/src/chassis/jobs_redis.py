"""arq's Redis connection, made to wait out an outage instead of ending the worker.

arq's poll loop has no error handling: one failed Redis command ends the
worker process, and a restart cannot bring Redis back. `redis_settings_for`
gives arq a pool whose commands are tried again, with backoff, while Redis
refuses, cuts or stops answering (a partition drops packets: only timeouts
tell); `adopt_redis_settings` then gives that pool what arq cannot pass it:
the command timeout, health checks, connections that retry their handshake
too, and transactions whose WATCH outlives a lost connection.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff, ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chassis.settings import BaseServiceSettings

__all__ = [
    "REDIS_OUTAGE_BACKOFF",
    "REDIS_OUTAGE_ERRORS",
    "OutageRetry",
    "adopt_redis_settings",
    "redis_settings_for",
]

T = TypeVar("T")

#: Waits between tries while Redis is out of reach: 0.2 s doubling to 2 s.
REDIS_OUTAGE_BACKOFF = ExponentialBackoff(cap=2.0, base=0.1)

#: A command that raised one of these did not reach Redis or got no answer: refused or cut
#: (ConnectionError), no answer within the socket timeout (TimeoutError), and what opening
#: a socket raises bare inside redis-py's own retry (OSError; a connect timeout is
#: asyncio.TimeoutError, an OSError since Python 3.11).
REDIS_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)


class OutageRetry(Retry):
    """redis-py's `Retry`, bounded by time instead of by tries.

    A call is tried again until `seconds` have passed since its first failure
    (0: forever). redis-py nests retries (a command's retry reconnects, and the
    connect has its own): counted tries would multiply, elapsed time does not.
    """

    __slots__ = ("_seconds",)

    def __init__(
        self,
        backoff: AbstractBackoff,
        seconds: float,
        supported_errors: tuple[type[Exception], ...] = REDIS_OUTAGE_ERRORS,
    ) -> None:
        super().__init__(backoff, -1, supported_errors)  # type: ignore[arg-type]
        self._seconds = seconds

    @property
    def seconds(self) -> float:
        """How long a call is tried again after its first failure (0: forever)."""
        return self._seconds

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        first_failure: float | None = None
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if self._seconds > 0 and now - first_failure >= self._seconds:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))


class _PatientConnection(AbstractConnection):
    """A connection whose whole connect is retried, handshake included.

    redis-py retries opening the socket, but not the handshake after it
    (SELECT, AUTH, CLIENT SETINFO), and a pool hands out a closed connection
    outside any command's retry: a Redis that accepts but does not answer
    (stopped, or a middlebox) would fail the command at once.
    """

    async def connect(self) -> None:
        if self.is_connected:
            return
        await self.retry.call_with_retry(super().connect, lambda _error: self.disconnect())

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[safe-super,no-untyped-call]
        # A socket just opened needs no PING before its handshake (whose own reads time out
        # on a dead peer). With the health check due, the handshake's first send pinged; a
        # failed PING reconnected from inside that send, and each such reconnect pinged
        # again: every try of an outage nested one level deeper, until a long blackhole
        # (70 s in the fault suite) ended arq's poll loop with RecursionError.
        if self.health_check_interval:
            loop = asyncio.get_running_loop()
            self.next_health_check = loop.time() + self.health_check_interval

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """redis-py's, with `asyncio.timeout` where it has `asyncio.wait_for`.

        Python 3.11's wait_for returns its inner task's result when that task finished in
        the loop turn the caller was cancelled in: the cancel is lost. arq's close() cancels
        the poll loop once, so a lost cancel left it polling a closed pool.
        """
        if not self.socket_timeout:
            await super().send_packed_command(command, check_health)
            return
        if not self.is_connected:
            await self.connect()
        elif check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        packed: Iterable[bytes] = [command] if isinstance(command, bytes) else command
        try:
            async with asyncio.timeout(self.socket_timeout):
                await self._send_packed_command(packed)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as error:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {error}") from error
        except BaseException:
            # As redis-py: a half-sent command leaves the connection unusable.
            await self.disconnect(nowait=True)
            raise


class _PatientPipeline(Pipeline):
    """A pipeline whose WATCH outlives a lost connection, so that arq's claim of a job does.

    redis-py answers a connection lost while watching with WatchError, raised from the
    read that failed (arq claims a job with WATCH, EXISTS, ZSCORE, then MULTI/EXEC, and
    catches WatchError only from the EXEC: from a read it ended the worker). Here the
    reads made under the lost WATCH are made again under a new one, once Redis answers:
    the same answers mean the caller's decision still stands, and EXEC keeps guarding it
    from then on; other answers fail the EXEC with WatchError, as a changed key would.
    An EXEC whose connection is lost stays redis-py's WatchError: it may have run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watched: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []
        self._watch_lost = False
        self._losing = False
        self._changed = False

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        lost_since: float | None = None
        while True:
            try:
                if self._watch_lost:
                    await self._watch_again()
                result = await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except WatchError as error:
                if not self._watch_lost:
                    raise
                # Lost again: the outage goes on, within the pool's budget like any command.
                now = time.monotonic()
                lost_since = now if lost_since is None else lost_since
                budget = _outage_budget(self.connection_pool.connection_kwargs.get("retry"))
                if budget and now - lost_since >= budget:
                    raise RedisTimeoutError(
                        f"Redis did not answer within the outage budget ({budget:g} s)"
                    ) from error
                continue
            if self.watching:
                self._watched.append((args, dict(options), result))
            else:
                self._watched.clear()
            return result

    async def _watch_again(self) -> None:
        for args, options, seen in self._watched:
            if await super().immediate_execute_command(*args, **options) != seen:  # type: ignore[no-untyped-call]
                self._changed = True
        self._watch_lost = False

    async def _disconnect_reset_raise(self, conn: AbstractConnection, error: Exception) -> None:
        # Called by the retry on an outage error; raises WatchError if we were watching.
        self._watch_lost = self.watching
        self._losing = True
        try:
            await super()._disconnect_reset_raise(conn, error)  # type: ignore[no-untyped-call]
        finally:
            self._losing = False

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self._changed and (self.is_transaction or self.explicit_transaction):
            await self.reset()
            raise WatchError("Watched keys changed while the connection was lost")
        return await super().execute(raise_on_error)

    async def reset(self) -> None:
        try:
            await super().reset()  # type: ignore[no-untyped-call]
        except RedisTimeoutError:
            # UNWATCH got no answer: redis-py's reset catches only ConnectionError, and
            # kept the connection out of the pool for good (found as "Unclosed client
            # session" when the pipeline was collected). Closed, it goes back all the same.
            await self._release_closed()
        except BaseException:
            # Cancelled mid-UNWATCH (a worker stopping): give the connection back, then stop.
            await self._release_closed()
            raise
        finally:
            if not self._losing:  # the reset after a lost WATCH keeps what it read
                self._watched.clear()
                self._watch_lost = self._changed = False

    async def _release_closed(self) -> None:
        connection, self.connection = self.connection, None
        self.watching = self.explicit_transaction = False
        self.command_stack = []
        if connection is not None:
            await connection.disconnect(nowait=True)
            await self.connection_pool.release(connection)


def _outage_budget(retry: object) -> float:
    """Seconds an `OutageRetry` keeps trying (0: forever); 0 for any other retry."""
    return retry.seconds if isinstance(retry, OutageRetry) else 0.0


class _PatientPipelines(Redis):
    """A client whose transactions are `_PatientPipeline` ones."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _PatientPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


def _patient(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    if issubclass(connection_class, _PatientConnection):
        return connection_class
    name = f"Patient{connection_class.__name__}"
    return type(name, (_PatientConnection, connection_class), {})


def redis_settings_for(
    settings: BaseServiceSettings, *, outage_seconds: float = 0
) -> RedisSettings:
    """arq's connection settings from the service's ``redis`` group.

    A command that cannot reach Redis, or gets no answer in time, is tried
    again for `outage_seconds` (0: for as long as the outage lasts): an outage
    only pauses the worker, whose readiness reports Redis down meanwhile. A
    timed-out command may have run: arq's commands are safe to repeat, except
    that a repeated INCR may count one job try twice. A stop during the outage
    waits too: arq's close() deletes its health key before the shutdown hook
    runs, so the worker exits when Redis answers, the budget is spent, or its
    supervisor kills it (jobs are at-least-once: a killed one runs again).

    A connection lost between the WATCH and the EXEC with which arq claims a
    job is waited out too (`_PatientPipeline`). One gap remains: an EXEC whose
    answer is lost may have run, and a claim that did leaves the job to arq's
    in-progress key expiry (the job timeout plus 10 s) before it runs.
    """
    redis = RedisSettings.from_dsn(settings.redis.url)
    redis.conn_timeout = max(1, math.ceil(settings.redis.connect_timeout_seconds))
    redis.max_connections = settings.redis.max_connections
    # Timeouts are named here rather than by retry_on_timeout=True, which only appends
    # TimeoutError to this same list, on every client and connection redis-py makes.
    redis.retry_on_error = [RedisConnectionError, RedisTimeoutError]
    redis.retry = OutageRetry(REDIS_OUTAGE_BACKOFF, outage_seconds)
    return redis


async def adopt_redis_settings(redis: Redis, settings: BaseServiceSettings) -> None:
    """Give arq's pool the command timeout, health checks and patient connections, and
    arq's client patient transactions.

    arq passes no socket timeout to its pool: a command sent to a Redis that
    stopped answering would wait forever, and no retry would start. New
    connections get all three; the pool's existing ones (arq's PING and INFO
    at start, none in use) are closed and forgotten, so that every connection
    from here on has them.
    """
    pool = redis.connection_pool
    pool.connection_kwargs["socket_timeout"] = settings.redis.socket_timeout_seconds
    pool.connection_kwargs["health_check_interval"] = settings.redis.health_check_interval_seconds
    pool.connection_class = _patient(pool.connection_class)
    if not isinstance(redis, _PatientPipelines):
        # arq made the client (an ArqRedis) and the worker uses that very object.
        redis.__class__ = type(
            f"Patient{type(redis).__name__}", (_PatientPipelines, type(redis)), {}
        )
    await pool.disconnect()
    pool.reset()  # type: ignore[no-untyped-call]
