"""The upstream's answer relayed to the client, with the upstream stream always closed.

The body is relayed raw: a compressed body stays compressed and its
Content-Length stays true. Two ways, by what the upstream declares:

- **Small** (a Content-Length of at most `INLINE_BODY_BYTES`, nearly every API
  answer): read whole before the answer starts, within the upstream's read
  timeout, then sent in one piece. No tasks: for a JSON answer the relay and
  disconnect watch cost more than everything else the response does. A body
  the upstream cuts short becomes a 502 problem, since nothing was sent yet.
- **Large, or of unknown length** (downloads, chunked or endless streams):
  relayed chunk by chunk as it arrives, never buffered, while the client's
  disconnect is watched: when the client goes away the relay stops and the
  upstream connection is released at once, instead of the gateway reading a
  large or endless body for nobody. A body cut short there ends the client's
  connection without finishing it, the only honest signal left once the
  headers are out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from chassis.http import UpstreamBadGateway
from chassis.types import Headers, Receive, Scope, Send

logger = structlog.get_logger("gateway.proxy")

#: What writing to a client that has gone raises, depending on the server.
CLIENT_GONE: tuple[type[BaseException], ...] = (OSError, ClientDisconnect)
#: The largest declared body read whole before the answer starts (larger ones stream).
INLINE_BODY_BYTES = 64 * 1024


class UpstreamResponse(Response):
    """Relays `upstream` (opened with ``stream``); calls `close` however the relay ends."""

    def __init__(
        self,
        upstream: httpx.Response,
        *,
        upstream_name: str,
        headers: Headers,
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.status_code = upstream.status_code
        self.background = None
        self.raw_headers = headers
        self._upstream = upstream
        self._upstream_name = upstream_name
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if _small_enough_to_read_whole(self._upstream.headers):
                await self._send_whole(send)
            else:
                await self._stream(receive, send)
        finally:
            await self._close()
        if self.background is not None:
            await self.background()

    async def _stream(self, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        relay = asyncio.create_task(self._relay(send), name="proxy-relay")
        watch = asyncio.create_task(_wait_disconnect(receive), name="proxy-disconnect-watch")
        try:
            await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
        error = relay.exception() if relay.done() and not relay.cancelled() else None
        if error is not None and not isinstance(error, CLIENT_GONE):
            raise error

    async def _send_whole(self, send: Send) -> None:
        try:
            chunks = [chunk async for chunk in self._upstream.aiter_raw()]
        except httpx.TransportError as exc:
            logger.warning(
                "upstream_body_interrupted",
                upstream=self._upstream_name,
                error=type(exc).__name__,
            )
            raise UpstreamBadGateway(
                self._upstream_name,
                f"Upstream {self._upstream_name!r} broke off its answer.",
            ) from exc
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": b"".join(chunks)})
        except CLIENT_GONE:
            return

    async def _relay(self, send: Send) -> None:
        try:
            async for chunk in self._upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError as exc:
            # Headers are out: the only honest signal left is to end the connection
            # without finishing the body, which the server does when we return.
            logger.warning(
                "upstream_body_interrupted",
                upstream=self._upstream_name,
                error=type(exc).__name__,
            )
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _small_enough_to_read_whole(headers: httpx.Headers) -> bool:
    """Whether the upstream declared a Content-Length of at most `INLINE_BODY_BYTES`."""
    value = headers.get("content-length", "")
    return value.isdigit() and int(value) <= INLINE_BODY_BYTES


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
