"""Publish and receive event envelopes over Redis pub/sub.

Channels: one per event type, ``<prefix>.<type>`` (``events.order.created``).
A consumer subscribes to exactly the types it wants, or to a family with a
pattern (``events.order.*`` via `pattern_for`), so the gateway's single
subscription sees every order event and nothing else.

Pub/sub is fire-and-forget: a message reaches the subscribers connected at
that moment and nobody else. Work that must not be lost goes through the
outbox and an Arq job (see docs/adr/0003-transactional-outbox.md); live
events here are best-effort fan-out that consumers dedupe by event id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self

import structlog
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from redis.asyncio import Redis

from chassis.events.envelope import EventEnvelope, MalformedEventError, event_span
from chassis.metrics.registry import EVENT_LAG, EVENTS_PUBLISHED, EVENTS_RECEIVED

logger = structlog.get_logger("chassis.events")

DEFAULT_PREFIX = "events"

#: Receives one decoded envelope; should be quick (hand work to a queue), it runs inline.
EventHandler = Callable[[EventEnvelope], Awaitable[None]]


def channel_for(event_type: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """The channel events of `event_type` are published on."""
    return f"{prefix}.{event_type}"


def pattern_for(type_prefix: str = "", *, prefix: str = DEFAULT_PREFIX) -> str:
    """A PSUBSCRIBE pattern for a family of types: ``pattern_for("order")`` is ``events.order.*``.

    With no `type_prefix` it matches every event under `prefix`.
    """
    family = f"{prefix}.{type_prefix}." if type_prefix else f"{prefix}."
    return family + "*"


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped at `maximum`."""
    # Capped exponent: an outage of many hours must not overflow the float.
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security


class EventPublisher:
    """Publishes envelopes to ``<prefix>.<type>`` on a shared Redis client."""

    def __init__(self, redis: Redis, *, channel_prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self.channel_prefix = channel_prefix

    def channel_for(self, event_type: str) -> str:
        return channel_for(event_type, prefix=self.channel_prefix)

    async def publish(self, envelope: EventEnvelope, *, channel: str | None = None) -> int:
        """Hand the event to Redis; return how many subscribers it reached.

        Raises the client's error when Redis did not accept it (the outbox
        relay then retries the row).
        """
        target = channel or self.channel_for(envelope.type)
        receivers = await self._redis.publish(target, envelope.to_json())
        EVENTS_PUBLISHED.labels(producer=envelope.producer, type=envelope.type).inc()
        return int(receivers)


class EventSubscriber:
    """One long-lived subscription that survives Redis restarts.

    Runs in a background task (``start``/``stop`` or ``async with``). When the
    connection drops it reconnects with jittered exponential backoff and
    subscribes again; messages published while it was away are not replayed
    (pub/sub keeps nothing). A malformed message is logged and skipped and a
    failing handler is logged; neither stops the loop.

    `redis` is a client (its pool lends the subscription a connection) or a
    URL (the subscriber then owns and closes its client).
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        handler: EventHandler,
        channels: Iterable[str] = (),
        patterns: Iterable[str] = (),
        consumer: str = "subscriber",
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        poll_timeout: float = 1.0,
    ) -> None:
        self._channels = list(dict.fromkeys(channels))
        self._patterns = list(dict.fromkeys(patterns))
        if not self._channels and not self._patterns:
            raise ValueError("EventSubscriber needs at least one channel or pattern")
        if isinstance(redis, str):
            self._client = Redis.from_url(redis)
            self._owns_client = True
        else:
            self._client = redis
            self._owns_client = False
        self._handler = handler
        self.consumer = consumer
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.poll_timeout = poll_timeout
        #: True while subscribed (every SUBSCRIBE/PSUBSCRIBE confirmed by the server).
        self.connected = False
        #: The last connection error, kept after reconnecting for diagnosis.
        self.last_error: str | None = None
        #: Times the subscription was lost and re-established.
        self.reconnects = 0
        self._failures = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tracer = trace.get_tracer("chassis.events")

    # --- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("subscriber already started")
        self._task = asyncio.create_task(self._run(), name=f"event-subscriber:{self.consumer}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._set_disconnected()
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_connected(self) -> None:
        """Return once subscribed (bound it with ``asyncio.timeout``)."""
        await self._subscribed.wait()

    def check(self, _app: object = None) -> dict[str, Any]:
        """Readiness check: details while subscribed, ConnectionError otherwise."""
        if not self.connected:
            raise ConnectionError(f"event subscription down: {self.last_error or 'not started'}")
        return {"reconnects": self.reconnects}

    # --- loop --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                self._set_disconnected()
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff_delay(
                    self._failures, initial=self.reconnect_initial, maximum=self.reconnect_max
                )
                self._failures += 1
                logger.warning(
                    "event_subscriber_reconnecting",
                    consumer=self.consumer,
                    error=self.last_error,
                    attempt=self._failures,
                    delay_seconds=round(delay, 3),
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            if self._channels:
                await pubsub.subscribe(*self._channels)
            if self._patterns:
                await pubsub.psubscribe(*self._patterns)
            unconfirmed = len(self._channels) + len(self._patterns)
            while True:
                message = await pubsub.get_message(timeout=self.poll_timeout)
                if message is None:
                    continue
                kind = message["type"]
                if kind in ("subscribe", "psubscribe"):
                    unconfirmed -= 1
                    if unconfirmed == 0:
                        self._set_connected()
                elif kind in ("message", "pmessage"):
                    await self._deliver(message["data"])
        finally:
            self._set_disconnected()
            await pubsub.aclose()

    def _set_connected(self) -> None:
        if self._failures:
            self.reconnects += 1
            logger.info(
                "event_subscriber_reconnected", consumer=self.consumer, attempts=self._failures
            )
        self._failures = 0
        self.connected = True
        self._subscribed.set()

    def _set_disconnected(self) -> None:
        self.connected = False
        self._subscribed.clear()

    async def _deliver(self, data: bytes) -> None:
        try:
            envelope = EventEnvelope.from_json(data)
        except MalformedEventError as exc:
            logger.warning(
                "event_malformed_skipped", consumer=self.consumer, error=str(exc), size=len(data)
            )
            return
        EVENTS_RECEIVED.labels(consumer=self.consumer, type=envelope.type).inc()
        lag = time.time() - envelope.occurred_at.timestamp()
        EVENT_LAG.labels(consumer=self.consumer, type=envelope.type).observe(max(lag, 0.0))
        with event_span(
            self._tracer,
            envelope,
            operation="process",
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self._handler(envelope)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                logger.exception(
                    "event_handler_failed",
                    consumer=self.consumer,
                    event_id=envelope.id,
                    event_type=envelope.type,
                )
