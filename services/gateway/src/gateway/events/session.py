"""Serve one live connection until the client leaves or the hub drops it.

Three things run at once: the pump (next event or, when idle, a heartbeat,
written to the client), a watcher for the client's disconnect, and a watcher
for the hub's drop. Whichever finishes first ends the session and cancels the
others. The drop watcher is what makes a slow client closable: its pump is
usually stuck inside a write the client never reads, and only cancellation
gets it out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect

from chassis.events import EventEnvelope
from gateway.events.hub import Connection

SessionEnd = Literal["dropped", "disconnected"]

#: What a write to a client that has gone raises (uvicorn's ClientDisconnected is an OSError).
DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ClientDisconnect,
    WebSocketDisconnect,
)


async def run_session(
    connection: Connection,
    *,
    send_event: Callable[[EventEnvelope], Awaitable[None]],
    send_heartbeat: Callable[[], Awaitable[None]],
    wait_disconnect: Callable[[], Coroutine[Any, Any, None]],
    heartbeat_seconds: float,
) -> SessionEnd:
    """Pump events and heartbeats to the client; say why the session ended."""

    async def pump() -> None:
        while True:
            try:
                async with asyncio.timeout(heartbeat_seconds):
                    event = await connection.next_event()
            except TimeoutError:
                await send_heartbeat()
                continue
            await send_event(event)

    pump_task = asyncio.create_task(pump(), name=f"live-pump:{connection.transport}")
    client_task = asyncio.create_task(wait_disconnect(), name="live-disconnect-watch")
    drop_task = asyncio.create_task(connection.dropped.wait(), name="live-drop-watch")
    tasks = (pump_task, client_task, drop_task)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if drop_task.done() and not drop_task.cancelled():
        return "dropped"
    if pump_task.done() and not pump_task.cancelled():
        error = pump_task.exception()
        if error is not None and not isinstance(error, DISCONNECT_ERRORS):
            raise error
    return "disconnected"
