"""httpx over aiohttp's connection pool, with failures named as httpx's own transport names them.

The request goes to aiohttp as it is, not rebuilt: headers as the pairs httpx
holds (``httpx.Headers`` read as a mapping joins repeated headers and scans
the list once per name), the URL as its text, and one ``ClientTimeout`` per
distinct set of timeouts, made once. That is httpx-aiohttp's
``handle_async_request`` without the proxy, SNI and per-call conversions the
chassis never needs (docs/adr/0011).

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

from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

# Most specific first: the first match wins.
_CAUSES: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientOSError, httpx.ReadError),
)

_HTTP_1_1 = {"http_version": b"HTTP/1.1"}


class ChassisAiohttpTransport(AiohttpTransport):
    """`AiohttpTransport` with a lean request path and failures mapped as httpx maps them."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        # httpx applies `limits` only to its own transport; aiohttp's connector gets them here.
        super().__init__(limits=limits, trust_env=False)
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session()
        body_errors: list[BaseException] = []
        data: bytes | httpx.AsyncByteStream | None
        if _is_read(request):
            data = request.content or None
        elif isinstance(request.stream, httpx.AsyncByteStream):
            data = _ErrorKeepingStream(request.stream, body_errors)
            # aiohttp frames a streamed body itself.
            request.headers.pop("transfer-encoding", None)
        else:
            raise RuntimeError("an async transport cannot send a synchronous request body")
        try:
            with map_aiohttp_exceptions():
                response = await session.request(
                    request.method,
                    str(request.url),
                    headers=request.headers.multi_items(),
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=self._timeout(request.extensions.get("timeout", {})),
                ).__aenter__()
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
        extensions = dict(_HTTP_1_1)
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )

    def _session(self) -> aiohttp.ClientSession:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    def _timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        made = self._timeouts.get(key)
        if made is None:
            made = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = made
        return made


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
