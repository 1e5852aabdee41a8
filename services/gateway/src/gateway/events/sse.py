"""Server-Sent Events: a caller's live events as ``text/event-stream``.

Each event is one frame: ``id:``, ``event:`` (the type) and ``data:`` (the
event as JSON on one line). An idle stream gets a ``: ping`` comment every
heartbeat so that proxies keep it open and the client can tell it is alive.
The stream ends when the client disconnects, or when the hub drops it (a
client too slow for its queue, or shutdown); the ``retry:`` field sent first
tells browsers how soon to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response

from chassis.events import EventEnvelope
from chassis.types import Message, Receive, Scope, Send
from gateway.events.hub import Connection, EventHub
from gateway.events.schemas import LiveEvent
from gateway.events.session import DISCONNECT_ERRORS, run_session

HEARTBEAT_FRAME = b": ping\n\n"
RECONNECT_MILLISECONDS = 3000


def event_frame(envelope: EventEnvelope) -> bytes:
    data = LiveEvent.from_envelope(envelope).model_dump_json()
    return f"id: {envelope.id}\nevent: {envelope.type}\ndata: {data}\n\n".encode()


def _body(chunk: bytes, *, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": more}


class EventStreamResponse(Response):
    """Streams one hub connection; always leaves the hub when the stream ends."""

    media_type = "text/event-stream"

    def __init__(
        self,
        hub: EventHub,
        connection: Connection,
        *,
        heartbeat_seconds: float,
        close_timeout_seconds: float,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._hub = hub
        self._connection = connection
        self._heartbeat_seconds = heartbeat_seconds
        self._close_timeout_seconds = close_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(_body(f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()))

            async def send_event(envelope: EventEnvelope) -> None:
                await send(_body(event_frame(envelope)))

            async def send_heartbeat() -> None:
                await send(_body(HEARTBEAT_FRAME))

            async def wait_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            await run_session(
                self._connection,
                send_event=send_event,
                send_heartbeat=send_heartbeat,
                wait_disconnect=wait_disconnect,
                heartbeat_seconds=self._heartbeat_seconds,
            )
            # A client that stopped reading may never take the end of the stream;
            # the server then closes the connection when we return.
            with contextlib.suppress(TimeoutError, *DISCONNECT_ERRORS):
                async with asyncio.timeout(self._close_timeout_seconds):
                    await send(_body(b"", more=False))
        finally:
            self._hub.disconnect(self._connection)
