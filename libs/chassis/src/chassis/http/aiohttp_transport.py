"""httpx over aiohttp's connection pool, with failures named as httpx's own transport names them.

httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` onto
``httpx.ConnectTimeout``: a refused connection would become a 504 instead of
a 503, and a connection the upstream closed mid-answer a "timeout" that the
retry policy treats as never sent. The retry policy and `as_service_error`
decide on the httpx class, so this transport re-maps the aiohttp error (kept
as the ``__cause__``) onto the class httpx's own transport raises for it.

aiohttp also writes a streamed request body in a task of its own: an error
raised by the body's source (the gateway's client leaving mid-upload, Starlette's
``ClientDisconnect``) never reaches the caller, who sees a broken connection
instead. That error is kept and raised in place of the one aiohttp reports, as
httpx's transport would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Most specific first: the first match wins.
_CAUSES: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.ReadError),
)


class ChassisAiohttpTransport(AiohttpTransport):
    """`AiohttpTransport` with connection failures mapped as httpx's transport maps them."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        # httpx applies `limits` only to its own transport; aiohttp's connector gets them here.
        super().__init__(limits=limits, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body_errors: list[BaseException] = []
        if isinstance(request.stream, httpx.AsyncByteStream) and not _is_read(request):
            request.stream = _ErrorKeepingStream(request.stream, body_errors)
        try:
            return await super().handle_async_request(request)
        except Exception as exc:
            if body_errors:
                raise body_errors[0] from exc
            if not isinstance(exc, httpx.TransportError):
                raise
            cause = exc.__cause__
            for aiohttp_error, httpx_error in _CAUSES:
                if isinstance(cause, aiohttp_error):
                    raise httpx_error(str(exc), request=request) from cause
            raise


def _is_read(request: httpx.Request) -> bool:
    try:
        request.content  # noqa: B018 - raises when the body is a stream not read yet
    except httpx.RequestNotRead:
        return False
    return True


class _ErrorKeepingStream(httpx.AsyncByteStream):
    """The request body as it was, remembering what its source raised."""

    def __init__(self, stream: httpx.AsyncByteStream, errors: list[BaseException]) -> None:
        self._stream = stream
        self._errors = errors

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except BaseException as exc:
            self._errors.append(exc)
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()
