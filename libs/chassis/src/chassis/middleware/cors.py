"""CORS from `SecuritySettings`, on Starlette's (already pure-ASGI) CORSMiddleware.

Browsers may read the request id, rate-limit and ETag headers. A wildcard
origin together with credentials is refused here as well as in the settings
validator: such a policy would let any site make credentialed requests.

Most requests carry no ``Origin`` (same-origin pages, servers, probes). For
those Starlette's middleware only adds ``Vary: Origin`` but still parses every
header; the subclass does that one thing on a fast path instead.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware

from chassis.settings import SecuritySettings
from chassis.types import ASGIApp, Message, Receive, Scope, Send

_ORIGIN = b"origin"
_VARY = b"vary"

EXPOSE_HEADERS = (
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "ETag",
)


def cors_middleware_kwargs(security: SecuritySettings) -> dict[str, Any]:
    """Keyword arguments for Starlette's CORSMiddleware built from the settings."""
    if security.cors_allow_credentials and "*" in security.cors_origins:
        raise ValueError(
            "CORS may not allow credentials for the '*' origin: list the allowed origins"
        )
    return {
        "allow_origins": list(security.cors_origins),
        "allow_methods": list(security.cors_allow_methods),
        "allow_headers": list(security.cors_allow_headers),
        "allow_credentials": security.cors_allow_credentials,
        "expose_headers": list(EXPOSE_HEADERS),
        "max_age": security.cors_max_age_seconds,
    }


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's CORSMiddleware configured from `SecuritySettings`."""

    def __init__(self, app: ASGIApp, *, security: SecuritySettings) -> None:
        super().__init__(app, **cors_middleware_kwargs(security))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == _ORIGIN for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _vary_on_origin(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_with_vary)


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Append Origin to Vary, merging existing Vary headers into one as Starlette does."""
    varies = [value for name, value in headers if name.lower() == _VARY]
    if not varies:
        headers.append((_VARY, b"Origin"))
        return headers
    kept = [(name, value) for name, value in headers if name.lower() != _VARY]
    kept.append((_VARY, b", ".join([*varies, b"Origin"])))
    return kept
