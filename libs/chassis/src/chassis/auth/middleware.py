"""Pure ASGI middleware that identifies the caller early, without refusing anyone.

With a valid bearer token the `Principal` lands in ``scope["state"]["principal"]``
before the inner layers run, so the rate limiter can key by principal and the
route dependency does not verify the token a second time. A refusal is kept
for the dependency to raise (see `chassis.auth.state`); the middleware itself
never answers: public routes stay public. Requests without an
``Authorization`` header cost a header scan and a copy of the state dict.
"""

from __future__ import annotations

from collections.abc import Callable

from chassis.auth.state import isolate_state, record_outcome
from chassis.auth.verify import TokenVerifier
from chassis.context import principal_id_var
from chassis.errors import ServiceError
from chassis.types import ASGIApp, Receive, Scope, Send

VerifierGetter = Callable[[Scope], TokenVerifier | None]


def verifier_from_app_state(scope: Scope) -> TokenVerifier | None:
    """The ``token_verifier`` on the app's state, if auth is set up."""
    app = scope.get("app")
    verifier = getattr(getattr(app, "state", None), "token_verifier", None)
    return verifier if isinstance(verifier, TokenVerifier) else None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


class PrincipalMiddleware:
    """Verify a bearer token if present and record the outcome in the scope state."""

    def __init__(
        self, app: ASGIApp, *, verifier_getter: VerifierGetter = verifier_from_app_state
    ) -> None:
        self.app = app
        self.verifier_getter = verifier_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        isolate_state(scope)
        token = bearer_token(scope)
        verifier = self.verifier_getter(scope) if token else None
        if token is None or verifier is None:
            await self.app(scope, receive, send)
            return
        try:
            principal = await verifier.verify(token)
        except ServiceError as exc:
            record_outcome(scope, exc)
            await self.app(scope, receive, send)
            return
        record_outcome(scope, principal)
        reset = principal_id_var.set(principal.subject)
        try:
            await self.app(scope, receive, send)
        finally:
            principal_id_var.reset(reset)
