"""Request body size limit: 413 for bodies larger than ``max_body_bytes``, never buffering.

A declared ``Content-Length`` over the limit is refused before the app runs.
A body without one (chunked) is counted as the app reads it; the read that
crosses the limit raises `RequestBodyTooLarge`, which becomes a 413 if the
response has not started, and aborts the response otherwise.

`RequestBodyTooLarge` is a Starlette ``HTTPException(413)`` on purpose: FastAPI
re-raises HTTPException out of its body parsing (anything else would become a
400 "error parsing the body") and the app's exception handlers render it, so a
route reading its body gets the same 413 problem+json as the middleware sends.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException

from chassis.errors import send_problem
from chassis.types import ASGIApp, Message, Receive, Scope, Send

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_HTTP1 = frozenset({"1.0", "1.1"})
_DETAIL = "The request body is larger than the server accepts."


class RequestBodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body crosses the limit."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=_DETAIL)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared, framed = _framing(scope)
        if declared is not None:
            if declared > self.max_body_bytes:
                await _send_too_large(send)
                return
            # The server frames the body by Content-Length (h11, httptools and HTTP/2 all
            # refuse a longer one), so a declared size within the limit needs no counting.
            await self.app(scope, receive, send)
            return
        if not framed and scope.get("http_version") in _HTTP1:
            # HTTP/1 framing: neither Content-Length nor Transfer-Encoding means no body.
            await self.app(scope, receive, send)
            return

        limit = self.max_body_bytes
        received = 0
        started = False

        async def receive_counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLarge
            return message

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_counting, send_tracking)
        except RequestBodyTooLarge:
            if started:
                raise
            await _send_too_large(send)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None if absent or malformed), and whether the
    request declared any body framing (Content-Length or Transfer-Encoding)."""
    declared: int | None = None
    framed = False
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            framed = True
            try:
                declared = int(value)
            except ValueError:
                # Servers refuse malformed lengths; if one slips through, count instead.
                declared = None
        elif name == _TRANSFER_ENCODING:
            framed = True
    return declared, framed


async def _send_too_large(send: Send) -> None:
    await send_problem(send, 413, title="Content Too Large", detail=_DETAIL)
