"""The upstream's answer streamed to the client, with the upstream stream always closed.

The body is relayed chunk by chunk as it arrives (never buffered), raw: a
compressed body stays compressed and its Content-Length stays true. While it
streams, the client's disconnect is watched too: when the client goes away
the relay stops and the upstream connection is released at once, instead of
the gateway reading a large or endless body for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from chassis.types import Headers, Receive, Scope, Send

logger = structlog.get_logger("gateway.proxy")

#: What writing to a client that has gone raises, depending on the server.
CLIENT_GONE: tuple[type[BaseException], ...] = (OSError, ClientDisconnect)


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
        finally:
            await self._close()
        if self.background is not None:
            await self.background()

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


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
