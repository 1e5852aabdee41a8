"""Transactional outbox: stage events with the data they describe, publish them later.

A service writes its rows and an outbox row in one transaction (`add_event`,
`insert_event`);
`OutboxRelay` publishes unsent rows and marks them sent only after Redis
accepted them, so an event is never lost when Redis is down and never
published for a transaction that rolled back. Why, and the guarantees, in
docs/adr/0003-transactional-outbox.md.

A relay wakes as soon as a transaction that staged an event commits in its
own process (a SQLAlchemy ``after_commit`` hook), so an event leaves within
milliseconds instead of up to a poll interval later; the poll remains for rows
committed by other processes and for retries.

Claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` on Postgres, so several
relays share the work without publishing a row twice. SQLite has no row
locks (the clause is dropped): run one relay per SQLite database, which is
the embedded single-writer set-up SQLite is for.

This module is the relay; the table's columns, `add_event`, `insert_event` and
`purge_sent` live in chassis.events.outbox_rows and are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from chassis.events.envelope import EventEnvelope, start_event_span, utcnow
from chassis.events.outbox_rows import (
    LAST_ERROR_LENGTH,
    STAGED_MODELS_KEY,
    OutboxMixin,
    OutboxT,
    add_event,
    envelope_from_row,
    insert_event,
    purge_sent,
)
from chassis.events.pubsub import EventPublisher, backoff_delay
from chassis.metrics.registry import OUTBOX_BACKLOG, OUTBOX_LAG, OUTBOX_PUBLISH_FAILURES

__all__ = [
    "LAST_ERROR_LENGTH",
    "STAGED_MODELS_KEY",
    "NoSubscribersError",
    "OutboxMixin",
    "OutboxRelay",
    "OutboxT",
    "PublishedHook",
    "add_event",
    "envelope_from_row",
    "insert_event",
    "purge_sent",
]

logger = structlog.get_logger("chassis.outbox")

#: Called after an event was published and before its row is marked sent (enqueue the job here).
PublishedHook = Callable[[EventEnvelope], Awaitable[None]]


#: Relays running in this process, woken when a transaction that staged their model's rows commits.
_running_relays: weakref.WeakSet[OutboxRelay[Any]] = weakref.WeakSet()


def _wake_relays_after_commit(session: Session) -> None:
    staged: set[type[OutboxMixin]] | None = session.info.pop(STAGED_MODELS_KEY, None)
    if not staged:
        return
    for relay in list(_running_relays):
        if relay.model in staged:
            relay.wake()


def _forget_staged_after_rollback(session: Session) -> None:
    # The rows are gone with the transaction: a later commit of this session must not wake for them.
    session.info.pop(STAGED_MODELS_KEY, None)


def _install_commit_hooks() -> None:
    # On the Session class, so that every session (AsyncSession wraps one) is covered;
    # installed once, when the first relay starts.
    if not event.contains(Session, "after_commit", _wake_relays_after_commit):
        event.listen(Session, "after_commit", _wake_relays_after_commit)
        event.listen(Session, "after_rollback", _forget_staged_after_rollback)


class NoSubscribersError(RuntimeError):
    """PUBLISH reached nobody while the relay requires at least one subscriber."""


class OutboxRelay(Generic[OutboxT]):
    """Publishes unsent outbox rows in claim order, marking each sent after Redis took it.

    One claim is one transaction: claim a batch (row locks on Postgres);
    publish it in one Redis round trip, run `on_published` for each event
    (inside a PRODUCER span under the staging request's trace; up to
    `hook_concurrency` at once), then set ``sent_at``. On the first failure,
    record it on that row (attempts, ``next_attempt_at`` with exponential
    backoff, ``last_error``) and leave the rest of the batch unsent, since the
    broker is probably down and they would fail the same way.

    With `wake_on_commit` (the default) a running relay starts a pass as soon
    as a transaction of this process that called `add_event` (or `insert_event`)
    for its model commits; `poll_interval` then only bounds the delay of rows
    committed elsewhere (another replica, a script) and of retries. Commits that land
    during a pass are taken by the next one, so a burst becomes a few passes,
    not one per event.

    `require_subscribers` treats a PUBLISH that reached no subscriber as a
    failure to retry. Off by default: in production the durable hand-off is
    the job `on_published` enqueues, and a missing live listener must not
    hold that up (see the ADR).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        model: type[OutboxT],
        publisher: EventPublisher,
        *,
        producer: str,
        batch_size: int = 100,
        poll_interval: float = 0.5,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        require_subscribers: bool = False,
        on_published: PublishedHook | None = None,
        hook_concurrency: int = 8,
        metrics_interval: float = 5.0,
        wake_on_commit: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if hook_concurrency < 1:
            raise ValueError("hook_concurrency must be at least 1")
        self._sessionmaker = sessionmaker
        self.model = model
        self._publisher = publisher
        self.producer = producer
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.require_subscribers = require_subscribers
        self._on_published = on_published
        self.hook_concurrency = hook_concurrency
        self.metrics_interval = metrics_interval
        self.wake_on_commit = wake_on_commit
        self._clock = clock
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics_at: datetime | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._tracer = trace.get_tracer("chassis.outbox")

    # --- one pass ------------------------------------------------------------------
    def retry_delay(self, attempts: int) -> timedelta:
        """Wait before the next try of a row that has failed `attempts` times."""
        # Capped exponent: a row failing for days must not overflow the float.
        exponent = min(max(attempts - 1, 0), 32)
        seconds = min(self.max_backoff, self.initial_backoff * 2.0**exponent)
        return timedelta(seconds=seconds)

    async def relay_once(self) -> int:
        """Claim one batch and publish it; return how many rows were marked sent."""
        model = self.model
        claim = (
            select(model)
            .where(model.sent_at.is_(None), model.next_attempt_at <= self._clock())
            .order_by(model.created_at, model.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        async with self._sessionmaker.begin() as session:
            rows: Sequence[OutboxT] = (await session.scalars(claim)).all()
            published = await self._deliver(rows) if rows else 0
            if self._metrics_due():
                await self._update_metrics(session)
        return published

    async def _deliver(self, rows: Sequence[OutboxT]) -> int:
        """Publish the batch in one round trip, then run the hook for each event.

        Under load the relay is one task among hundreds of requests, and every
        await waits a turn of the event loop: a round trip per event (and the
        hook's own, three for an arq job) left it far behind the commits. So the
        events go out in one pipeline and the hooks run side by side, at most
        `hook_concurrency` at once, started in order.

        Rows are marked sent up to the first failure; that row is recorded for a
        retry and the later ones stay unsent. Their events went out, so the retry
        repeats them: delivery is at least once, consumers dedupe by event id.
        """
        envelopes = [envelope_from_row(row) for row in rows]
        # Each under its producing request's trace, so the job a hook enqueues continues it.
        spans = [start_event_span(self._tracer, e, operation="send") for e in envelopes]
        try:
            try:
                reached = await self._publisher.publish_many(envelopes)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
                for span in spans:
                    _record_error(span, exc)
                # Redis refused the whole batch: one failure, on the oldest row.
                self._record_failure(rows[0], exc)
                return 0
            slots = asyncio.Semaphore(self.hook_concurrency)

            async def finish(envelope: EventEnvelope, receivers: int, span: Span) -> None:
                async with slots:
                    with trace.use_span(span):
                        if self.require_subscribers and receivers == 0:
                            raise NoSubscribersError("no subscriber received the event")
                        if self._on_published is not None:
                            await self._on_published(envelope)

            outcomes = await asyncio.gather(
                *map(finish, envelopes, reached, spans), return_exceptions=True
            )
            published = 0
            for row, outcome in zip(rows, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome  # cancellation: the batch is not finished
                    self._record_failure(row, outcome)
                    break
                row.sent_at = self._clock()
                published += 1
            return published
        finally:
            for span in spans:
                span.end()

    def _record_failure(self, row: OutboxT, exc: Exception) -> None:
        row.attempts = (row.attempts or 0) + 1
        delay = self.retry_delay(row.attempts)
        row.next_attempt_at = self._clock() + delay
        row.last_error = f"{type(exc).__name__}: {exc}"[:LAST_ERROR_LENGTH]
        OUTBOX_PUBLISH_FAILURES.labels(producer=self.producer).inc()
        logger.warning(
            "outbox_publish_failed",
            event_id=row.id,
            event_type=row.event_type,
            attempts=row.attempts,
            retry_in_seconds=delay.total_seconds(),
            error=row.last_error,
        )

    # --- metrics ---------------------------------------------------------------------
    def _metrics_due(self) -> bool:
        now = self._clock()
        if self._metrics_at is None or (now - self._metrics_at).total_seconds() >= (
            self.metrics_interval
        ):
            self._metrics_at = now
            return True
        return False

    async def refresh_metrics(self) -> tuple[int, float]:
        """Set the backlog and lag gauges now; return (unsent rows, oldest age in seconds)."""
        async with self._sessionmaker() as session:
            return await self._update_metrics(session)

    async def _update_metrics(self, session: AsyncSession) -> tuple[int, float]:
        model = self.model
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(model.created_at)).where(model.sent_at.is_(None))
            )
        ).one()
        lag = max((self._clock() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        OUTBOX_BACKLOG.labels(producer=self.producer).set(count)
        OUTBOX_LAG.labels(producer=self.producer).set(lag)
        return int(count), lag

    # --- loop ------------------------------------------------------------------------
    def wake(self) -> None:
        """Start the next pass now instead of after the poll interval (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._wake.set()
        else:
            # A synchronous Session committing in another thread.
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set: again at once after a full batch, else after a pause.

        The pause ends early when `wake` is called (a commit that staged an
        event). A failing pass (database down) is logged and retried with
        backoff, which commits do not cut short; a stop request lets the
        current batch finish so nothing published is left unmarked.
        """
        self._loop = asyncio.get_running_loop()
        if self.wake_on_commit:
            _install_commit_hooks()
            _running_relays.add(self)
        try:
            await self._relay_until(stop)
        finally:
            _running_relays.discard(self)
            self._loop = None

    async def _relay_until(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            # Cleared before the claim: a commit landing during this pass wakes the next one.
            self._wake.clear()
            try:
                published = await self.relay_once()
            except Exception as exc:  # noqa: BLE001 - the relay must outlive outages
                delay = backoff_delay(
                    failures, initial=self.poll_interval, maximum=self.max_backoff
                )
                failures += 1
                logger.warning(
                    "outbox_relay_pass_failed",
                    producer=self.producer,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_seconds=round(delay, 3),
                )
                await _wait(stop, delay)
                continue
            failures = 0
            if published < self.batch_size:
                await _wait_either(stop, self._wake, self.poll_interval)

    async def start(self) -> None:
        """Run the relay in a background task until `stop`."""
        if self._task is not None:
            raise RuntimeError("relay already started")
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop), name=f"outbox-relay:{self.producer}")

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Finish the batch in flight (up to `grace_seconds`), then stop."""
        task, self._task = self._task, None
        if task is None or self._stop is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_either(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Return when `stop` or `wake` is set, or after `seconds`."""
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _record_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
