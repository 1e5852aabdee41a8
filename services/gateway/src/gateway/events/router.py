"""Live events for the caller: Server-Sent Events and a WebSocket, fed by the process's hub.

Both carry only events whose subject is the caller. WebSocket close codes:
1008 a missing or invalid token; 1013 try again later (too many connections,
keys unavailable, or the client read too slowly and its queue filled up);
1012 the gateway is restarting.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket

from chassis.context import get_request_id
from chassis.errors import ServiceError, ServiceUnavailable, TooManyRequests
from chassis.events import EventEnvelope
from chassis.openapi import problem_statuses
from gateway.deps import CurrentUser, LiveEventsDep, SettingsDep
from gateway.events.auth import authenticate_websocket
from gateway.events.hub import Connection, EventHub, HubClosed, TooManyConnections, Transport
from gateway.events.schemas import EventMessage, HeartbeatMessage, LiveEvent
from gateway.events.session import DISCONNECT_ERRORS, run_session
from gateway.events.sse import EventStreamResponse

router = APIRouter(tags=["events"])

CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
#: RFC 6455 allows 123 bytes of close reason.
MAX_CLOSE_REASON = 123

HEARTBEAT_TEXT = HeartbeatMessage().model_dump_json()


def open_connection(hub: EventHub, subject: str, transport: Transport) -> Connection:
    """Register the caller with the hub, as a problem the client understands if it cannot be."""
    try:
        return hub.connect(subject, transport=transport)
    except TooManyConnections:
        raise TooManyRequests(
            f"At most {hub.max_connections_per_subject} live connections per caller.",
            retry_after=5,
        ) from None
    except HubClosed:
        raise ServiceUnavailable(
            "This gateway instance is shutting down; reconnect.", headers={"Retry-After": "1"}
        ) from None


@router.get(
    "/api/v1/events",
    status_code=200,
    response_class=EventStreamResponse,
    summary="Stream the caller's live events (Server-Sent Events)",
    responses={
        200: {
            "model": LiveEvent,
            "description": (
                "A `text/event-stream`: per event `id:`, `event:` (its type) and `data:` "
                "(this schema, as JSON); `: ping` comments while idle. The same events are "
                "available on the WebSocket `/ws/events` (token in the `Authorization` header "
                'or the `access_token` query parameter), as `{"type": "event", "event": '
                '...}` and `{"type": "heartbeat"}` messages.'
            ),
        },
        **problem_statuses(401, 429, 503),
    },
)
async def stream_events(
    principal: CurrentUser, live: LiveEventsDep, settings: SettingsDep
) -> EventStreamResponse:
    connection = open_connection(live.hub, principal.subject, "sse")
    return EventStreamResponse(
        live.hub,
        connection,
        heartbeat_seconds=settings.events.heartbeat_seconds,
        close_timeout_seconds=settings.events.close_timeout_seconds,
    )


@router.websocket("/ws/events")
async def events_websocket(
    websocket: WebSocket, live: LiveEventsDep, settings: SettingsDep
) -> None:
    try:
        principal = await authenticate_websocket(websocket)
        connection = open_connection(live.hub, principal.subject, "websocket")
    except ServiceError as exc:
        await _refuse(websocket, exc)
        return
    try:
        request_id = get_request_id()
        await websocket.accept(
            headers=[(b"x-request-id", request_id.encode())] if request_id else None
        )

        async def send_event(envelope: EventEnvelope) -> None:
            message = EventMessage(event=LiveEvent.from_envelope(envelope))
            await websocket.send_text(message.model_dump_json())

        async def send_heartbeat() -> None:
            await websocket.send_text(HEARTBEAT_TEXT)

        async def wait_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

        ended = await run_session(
            connection,
            send_event=send_event,
            send_heartbeat=send_heartbeat,
            wait_disconnect=wait_disconnect,
            heartbeat_seconds=settings.events.heartbeat_seconds,
        )
        if ended == "dropped":
            code = (
                CLOSE_SERVICE_RESTART
                if connection.drop_reason == "shutdown"
                else CLOSE_TRY_AGAIN_LATER
            )
            await _close(
                websocket,
                code,
                "server restarting" if code == CLOSE_SERVICE_RESTART else "too slow",
                wait_seconds=settings.events.close_timeout_seconds,
            )
    finally:
        live.hub.disconnect(connection)


async def _refuse(websocket: WebSocket, error: ServiceError) -> None:
    # Accepted first so that the client sees the close code and reason (a refused
    # handshake shows browsers nothing but an abnormal closure).
    code = CLOSE_POLICY_VIOLATION if error.status_code == 401 else CLOSE_TRY_AGAIN_LATER
    await websocket.accept()
    reason = (error.detail or error.title).encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
    await websocket.close(code=code, reason=reason)


async def _close(websocket: WebSocket, code: int, reason: str, *, wait_seconds: float) -> None:
    # A client that does not read cannot take the close frame; the server drops it when we return.
    with contextlib.suppress(TimeoutError, RuntimeError, *DISCONNECT_ERRORS):
        async with asyncio.timeout(wait_seconds):
            await websocket.close(code=code, reason=reason)
