"""Forward one request to an upstream through the chassis client, body streamed both ways.

The call goes through `UpstreamClient.stream`, so the upstream's deadline,
breaker and retries apply up to the response head: a request without a body
(GET, DELETE ...) is retried when it is idempotent, a streamed body never is
(it cannot be replayed). Failures surface as the chassis problems: 503 when
the upstream refuses connections or its breaker is open, 504 when it is too
slow, 502 when it breaks the protocol.

Paths are forwarded exactly as received (``raw_path``), so percent-encoding
survives. A path with ``.`` or ``..`` segments is refused with 404 before
anything is sent: URL normalisation on the way out would otherwise turn
``/api/v1/orders/../../internal/...`` into a path the gateway never exposes.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import lru_cache

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from chassis.disconnects import CLIENT_CLOSED_REQUEST
from chassis.errors import NotFound
from chassis.http import UpstreamClient
from chassis.types import Scope
from gateway.proxy.headers import client_response_headers, upstream_request_headers
from gateway.proxy.response import UpstreamResponse

_DOT_SEGMENTS = frozenset({".", ".."})


async def forward(
    request: Request, client: UpstreamClient, *, strip_rate_limit_headers: bool
) -> Response:
    """Send `request` to `client`'s upstream and relay its answer, whatever its status."""
    scope = request.scope
    if any(segment in _DOT_SEGMENTS for segment in scope["path"].split("/")):
        raise NotFound()
    stack = AsyncExitStack()
    try:
        upstream = await stack.enter_async_context(
            client.stream(
                request.method,
                upstream_target(scope),
                headers=upstream_request_headers(scope),
                content=request.stream() if has_body(scope) else None,
            )
        )
    except ClientDisconnect:
        await stack.aclose()
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except BaseException:
        await stack.aclose()
        raise
    return UpstreamResponse(
        upstream,
        upstream_name=client.name,
        headers=client_response_headers(
            upstream.headers.raw,
            upstream_origin=origin_of(client.settings.base_url),
            strip_rate_limit=strip_rate_limit_headers,
        ),
        close=stack.aclose,
    )


def upstream_target(scope: Scope) -> str:
    """The request's own path and query, still percent-encoded, for the upstream."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def has_body(scope: Scope) -> bool:
    """Whether the request declares a body (a non-zero Content-Length, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


@lru_cache(maxsize=64)
def origin_of(base_url: str) -> bytes:
    """``scheme://host[:port]`` of an upstream base URL (parsed once per base URL, not per call)."""
    url = httpx.URL(base_url)
    return f"{url.scheme}://{url.netloc.decode('ascii')}".encode("ascii")
