"""A WebSocket at a gateway's ``/ws/events``, read in the background into an `EventLog`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import websockets


@dataclass
class EventLog:
    """Order events one WebSocket received, in arrival order, and how it ended."""

    gateway: str = ""
    """Which gateway holds the socket, when a suite runs several."""
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: int | str | None = None
    """None while open; the close code, or how it ended without one."""

    def of(self, order_id: str) -> list[str]:
        return [e["type"] for e in self.events if e["payload"]["order"]["id"] == order_id]

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


@asynccontextmanager
async def event_socket(
    base_url: str, token: str, log: EventLog | None = None, *, open_timeout: float = 20
) -> AsyncIterator[EventLog]:
    """A WebSocket at `base_url` (a gateway), read in the background into `log` (a new one
    if none is given) until the block ends."""
    received = log if log is not None else EventLog()
    url = base_url.replace("http://", "ws://") + "/ws/events"
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=open_timeout
    ) as socket:

        async def read() -> None:
            try:
                async for raw in socket:
                    message = json.loads(raw)
                    if message["type"] == "event":
                        received.events.append(message["event"])
            except websockets.ConnectionClosed as exc:
                received.closed = exc.rcvd.code if exc.rcvd else "no close frame"
            else:
                received.closed = "closed"

        reader = asyncio.create_task(read())
        try:
            yield received
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
