"""Fan-out of events from the process's one Redis subscription to local live connections.

Each connection (one SSE stream or WebSocket) owns a bounded queue. The hub
hands an event to the connections of its subject with ``put_nowait`` and never
waits for a client: a connection whose queue is full is a client that does not
keep up, and it is dropped (its transport then closes it) so that one slow
reader can neither stall the others nor grow memory. Recently seen event ids
are remembered in a bounded LRU so that a redelivered event (the outbox relay
publishes at least once) reaches each client once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Literal

import structlog

from chassis.events import EventEnvelope
from chassis.metrics.registry import (
    LIVE_EVENT_CONNECTIONS,
    LIVE_EVENT_CONNECTIONS_DROPPED,
    LIVE_EVENTS_DELIVERED,
)

logger = structlog.get_logger("gateway.events")

Transport = Literal["sse", "websocket"]
DropReason = Literal["slow_consumer", "shutdown"]


class TooManyConnections(Exception):
    """The subject already holds the most live connections it may."""


class HubClosed(Exception):
    """The process is shutting down and takes no new live connections."""


class Connection:
    """One client's live stream: its subject, its bounded queue and whether the hub dropped it."""

    def __init__(self, subject: str, *, transport: Transport, queue_size: int) -> None:
        self.subject = subject
        self.transport = transport
        self._queue: asyncio.Queue[EventEnvelope] = asyncio.Queue(maxsize=queue_size)
        #: Set when the hub drops the connection; its transport must then close it.
        self.dropped = asyncio.Event()
        self.drop_reason: DropReason | None = None

    def offer(self, event: EventEnvelope) -> bool:
        """Queue `event` without waiting; False when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    async def next_event(self) -> EventEnvelope:
        """Wait for the next event."""
        return await self._queue.get()

    def mark_dropped(self, reason: DropReason) -> None:
        """Called by the hub: no more events; the transport closes the connection."""
        self.drop_reason = reason
        # Events nobody will read: release them now, not when the transport gets round to it.
        while not self._queue.empty():
            self._queue.get_nowait()
        self.dropped.set()


class EventHub:
    """Routes events by subject to connections; see the module docstring."""

    def __init__(
        self,
        *,
        queue_size: int = 100,
        dedupe_size: int = 10_000,
        max_connections_per_subject: int = 10,
    ) -> None:
        if queue_size < 1 or dedupe_size < 1 or max_connections_per_subject < 1:
            raise ValueError("queue_size, dedupe_size and max_connections_per_subject must be >= 1")
        self.queue_size = queue_size
        self.dedupe_size = dedupe_size
        self.max_connections_per_subject = max_connections_per_subject
        self._connections: dict[str, set[Connection]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.closed = False

    def __len__(self) -> int:
        """How many connections are registered now."""
        return sum(len(connections) for connections in self._connections.values())

    def connect(self, subject: str, *, transport: Transport) -> Connection:
        """Register a new connection for `subject`.

        Raises `TooManyConnections` past the per-subject cap and `HubClosed` after `close_all`.
        """
        if self.closed:
            raise HubClosed
        connections = self._connections.setdefault(subject, set())
        if len(connections) >= self.max_connections_per_subject:
            raise TooManyConnections(subject)
        connection = Connection(subject, transport=transport, queue_size=self.queue_size)
        connections.add(connection)
        LIVE_EVENT_CONNECTIONS.labels(transport=transport).inc()
        return connection

    def disconnect(self, connection: Connection) -> None:
        """Forget `connection` (idempotent: a dropped connection is already forgotten)."""
        connections = self._connections.get(connection.subject)
        if connections is None or connection not in connections:
            return
        connections.discard(connection)
        if not connections:
            del self._connections[connection.subject]
        LIVE_EVENT_CONNECTIONS.labels(transport=connection.transport).dec()

    def drop(self, connection: Connection, reason: DropReason) -> None:
        """Stop delivering to `connection` and tell its transport to close it."""
        self.disconnect(connection)
        connection.mark_dropped(reason)
        LIVE_EVENT_CONNECTIONS_DROPPED.labels(transport=connection.transport, reason=reason).inc()
        logger.info(
            "live_connection_dropped",
            subject=connection.subject,
            transport=connection.transport,
            reason=reason,
        )

    def close_all(self) -> None:
        """Drop every connection and refuse new ones (shutdown: clients go to another instance)."""
        self.closed = True
        for connections in list(self._connections.values()):
            for connection in list(connections):
                self.drop(connection, "shutdown")

    async def handle(self, event: EventEnvelope) -> None:
        """`EventSubscriber` handler: dispatch without awaiting anything."""
        self.dispatch(event)

    def dispatch(self, event: EventEnvelope) -> int:
        """Offer `event` to its subject's connections; return how many took it."""
        if self._already_seen(event.id) or event.subject is None:
            return 0
        connections = self._connections.get(event.subject)
        if not connections:
            return 0
        delivered = 0
        for connection in list(connections):
            if connection.offer(event):
                delivered += 1
                LIVE_EVENTS_DELIVERED.labels(transport=connection.transport).inc()
            else:
                self.drop(connection, "slow_consumer")
        return delivered

    def _already_seen(self, event_id: str) -> bool:
        seen = self._seen
        if event_id in seen:
            seen.move_to_end(event_id)
            return True
        seen[event_id] = None
        if len(seen) > self.dedupe_size:
            seen.popitem(last=False)
        return False
