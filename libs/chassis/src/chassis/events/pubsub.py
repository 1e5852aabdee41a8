"""Publish and receive event envelopes over Redis pub/sub.

Channels: one per event type, ``<prefix>.<type>`` (``events.order.created``).
A consumer subscribes to exactly the types it wants, or to a family with a
pattern (``events.order.*`` via `pattern_for`), so the gateway's single
subscription sees every order event and nothing else.

Pub/sub is fire-and-forget: a message reaches the subscribers connected at
that moment and nobody else. Work that must not be lost goes through the
outbox and an Arq job (see docs/adr/0003-transactional-outbox.md). For live
events a publisher may also append each event to a capped Redis stream (its
*replay stream*), and a subscriber that lost its connection reads back from it
what was published while it was away, so a reconnecting consumer misses
nothing the stream still holds (docs/adr/0013-event-replay-after-reconnect.md).
Consumers dedupe by event id either way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any, Self

import structlog
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chassis.events.envelope import EventEnvelope, MalformedEventError, event_span
from chassis.metrics.registry import EVENT_LAG, EVENTS_PUBLISHED, EVENTS_RECEIVED

logger = structlog.get_logger("chassis.events")

DEFAULT_PREFIX = "events"
#: Entries read per XRANGE call while replaying.
REPLAY_BATCH = 500

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


def replay_stream_for(prefix: str = DEFAULT_PREFIX) -> str:
    """The replay stream of the events under `prefix` (a key, so no clash with channels)."""
    return f"{prefix}:replay"


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped at `maximum`."""
    # Capped exponent: an outage of many hours must not overflow the float.
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security


class EventPublisher:
    """Publishes envelopes to ``<prefix>.<type>`` on a shared Redis client.

    With `replay_stream`, each event is also appended to that stream (capped at
    about `replay_max_len` entries) in the same MULTI as the PUBLISH, so that
    subscribers reconnecting after an outage can read back what they missed.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        channel_prefix: str = DEFAULT_PREFIX,
        replay_stream: str | None = None,
        replay_max_len: int = 10_000,
    ) -> None:
        if replay_max_len < 1:
            raise ValueError("replay_max_len must be at least 1")
        self._redis = redis
        self.channel_prefix = channel_prefix
        self.replay_stream = replay_stream
        self.replay_max_len = replay_max_len

    def channel_for(self, event_type: str) -> str:
        return channel_for(event_type, prefix=self.channel_prefix)

    async def publish(self, envelope: EventEnvelope, *, channel: str | None = None) -> int:
        """Hand the event to Redis; return how many subscribers it reached.

        Raises the client's error when Redis did not accept it (the outbox
        relay then retries the row).
        """
        target = channel or self.channel_for(envelope.type)
        data = envelope.to_json()
        if self.replay_stream is None:
            receivers = await self._redis.publish(target, data)
        else:
            async with self._redis.pipeline(transaction=True) as pipe:
                self._queue(pipe, target, data)
                _, receivers = await pipe.execute()
        EVENTS_PUBLISHED.labels(producer=envelope.producer, type=envelope.type).inc()
        return int(receivers)

    async def publish_many(self, envelopes: Sequence[EventEnvelope]) -> list[int]:
        """Hand a batch to Redis in one round trip, in order; how many subscribers each reached.

        One MULTI: Redis takes all of them or none. The outbox relay sends its
        batches so: under load, a round trip per event left it one task among
        hundreds of requests, waiting a turn of the event loop for each.
        """
        if not envelopes:
            return []
        async with self._redis.pipeline(transaction=True) as pipe:
            for envelope in envelopes:
                self._queue(pipe, self.channel_for(envelope.type), envelope.to_json())
            replies = await pipe.execute()
        for envelope in envelopes:
            EVENTS_PUBLISHED.labels(producer=envelope.producer, type=envelope.type).inc()
        # With the replay stream each event is an XADD reply, then its PUBLISH's count.
        counts = replies[1::2] if self.replay_stream is not None else replies
        return [int(count) for count in counts]

    def _queue(self, pipe: Pipeline, target: str, data: bytes) -> None:
        if self.replay_stream is not None:
            pipe.xadd(
                self.replay_stream,
                {"channel": target, "data": data},
                maxlen=self.replay_max_len,
                approximate=True,
            )
        pipe.publish(target, data)


class EventSubscriber:
    """One long-lived subscription that survives Redis restarts.

    Runs in a background task (``start``/``stop`` or ``async with``). When the
    connection drops it reconnects with jittered exponential backoff and
    subscribes again; messages published while it was away are not replayed
    (pub/sub keeps nothing). A malformed message is logged and skipped and a
    failing handler is logged; neither stops the loop.

    `redis` is a client (its pool lends the subscription a connection) or a
    URL (the subscriber then owns and closes its client).

    With `replay_stream` (the publisher's), once it is subscribed again after
    losing an established subscription, it hands the handler every entry of the
    stream on its channels from `replay_margin` seconds before the loss was
    noticed (covering a late notice and clock skew), then carries on live. The
    margin re-delivers some events the handler already had: handlers dedupe by
    event id, as at-least-once delivery requires anyway.
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
        replay_stream: str | None = None,
        replay_margin: float = 30.0,
    ) -> None:
        if replay_margin < 0:
            raise ValueError("replay_margin must be >= 0")
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
        self.replay_stream = replay_stream
        self.replay_margin = replay_margin
        #: Events read back from the replay stream after reconnects, in total.
        self.replayed = 0
        # Wall-clock time an established subscription was found lost; None while none is.
        self._lost_at: float | None = None
        self._ever_subscribed = False
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
        return {"reconnects": self.reconnects, "replayed": self.replayed}

    # --- loop --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                self._set_disconnected()
                if self._ever_subscribed and self._lost_at is None:
                    self._lost_at = time.time()
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
                        # Subscribed first, then read back: an event published in between
                        # arrives both ways and is deduped, none falls between the two.
                        await self._replay_missed()
                        self._set_connected()
                elif kind in ("message", "pmessage"):
                    await self._deliver(message["data"])
        finally:
            self._set_disconnected()
            await pubsub.aclose()

    async def _replay_missed(self) -> None:
        lost_at = self._lost_at
        if lost_at is None or self.replay_stream is None:
            return
        start = f"{max(int((lost_at - self.replay_margin) * 1000), 0)}-0"
        replayed = 0
        while True:
            entries = await self._client.xrange(
                self.replay_stream, min=start, max="+", count=REPLAY_BATCH
            )
            for _entry_id, fields in entries:
                channel = _text(fields.get(b"channel", fields.get("channel", b"")))
                data = fields.get(b"data", fields.get("data"))
                if data is not None and self._wants(channel):
                    await self._deliver(data if isinstance(data, bytes) else data.encode())
                    replayed += 1
            if len(entries) < REPLAY_BATCH:
                break
            start = "(" + _text(entries[-1][0])
        self._lost_at = None
        self.replayed += replayed
        logger.info("event_subscriber_replayed", consumer=self.consumer, events=replayed)

    def _wants(self, channel: str) -> bool:
        return channel in self._channels or any(
            fnmatchcase(channel, pattern) for pattern in self._patterns
        )

    def _set_connected(self) -> None:
        if self._failures:
            self.reconnects += 1
            logger.info(
                "event_subscriber_reconnected", consumer=self.consumer, attempts=self._failures
            )
        self._failures = 0
        self._ever_subscribed = True
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
        # Yield to the loop after each event. A replay batch, or pub/sub messages already
        # buffered on the socket, would otherwise be handed over without a single
        # suspension, and a handler that queues them for consumers (the gateway's hub, a
        # bounded queue per connection) would see a healthy consumer fall behind by the
        # whole burst and drop it as too slow.
        await asyncio.sleep(0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
