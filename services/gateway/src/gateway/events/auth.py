"""Who opens a WebSocket: a bearer token from the ``Authorization`` header or ``?access_token=``.

Browsers cannot set headers on a WebSocket, hence the query parameter; it is
read only on this endpoint, and the gateway redacts it from server log lines
(see `gateway.logging`). A header token was already verified by the chassis
principal middleware, whose outcome is reused rather than verified again.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from chassis.auth import Principal
from chassis.auth.deps import token_verifier
from chassis.auth.middleware import bearer_token
from chassis.auth.state import recorded_outcome
from chassis.errors import ServiceError, Unauthorized

QUERY_TOKEN_PARAMETER = "access_token"  # noqa: S105 - a parameter name, not a secret


async def authenticate_websocket(websocket: WebSocket) -> Principal:
    """The caller; raises `Unauthorized` (or 503 when keys cannot be fetched)."""
    outcome = recorded_outcome(websocket.scope)
    if isinstance(outcome, ServiceError):
        raise outcome
    if outcome is not None:
        return outcome
    token = bearer_token(websocket.scope) or websocket.query_params.get(QUERY_TOKEN_PARAMETER)
    if not token:
        raise Unauthorized("A bearer token is required.")
    return await token_verifier(websocket).verify(token)
