"""Request head size limit: 431 for a request line plus headers larger than ``max_header_bytes``.

The server's own parser is no reliable limit: uvicorn's h11 refuses a head only
while it is still incomplete and over 16 KiB, so a 64 KiB head that arrives in
one read is parsed and handed on whole (httptools has no limit at all). This
middleware gives every service the same deterministic answer, a 431 problem
with the usual headers, before a token in a huge ``Authorization`` header is
verified or a rate-limit key is built from it. Sizes count as on the wire: the
target, and each header's name, value and separators.
"""

from __future__ import annotations

from chassis.errors import send_problem
from chassis.types import ASGIApp, Receive, Scope, Send

_DETAIL = "The request headers are larger than the server accepts."
# ": " and CRLF around every header line.
_PER_HEADER_OVERHEAD = 4


class HeaderLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        if max_header_bytes < 1:
            raise ValueError("max_header_bytes must be positive")
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if head_size(scope) > self.max_header_bytes:
            if scope["type"] == "websocket":
                # Refusing before accept closes the handshake with 403; no body is possible.
                await send({"type": "websocket.close", "code": 1009})
                return
            await send_problem(send, 431, title="Request Header Fields Too Large", detail=_DETAIL)
            return
        await self.app(scope, receive, send)


def head_size(scope: Scope) -> int:
    """Bytes of the request target and headers, as the client sent them."""
    target = scope.get("raw_path") or scope["path"].encode()
    size = len(target) + len(scope.get("query_string", b""))
    for name, value in scope["headers"]:
        size += len(name) + len(value) + _PER_HEADER_OVERHEAD
    return size
