"""Which headers cross the proxy, in each direction, and the X-Forwarded-* the upstream gets.

Hop-by-hop headers (RFC 9110 section 7.6.1) describe one connection and are
dropped both ways, with any header the ``Connection`` header names.

Towards the upstream the gateway also drops what it answers for itself:
``Host`` (httpx sets the upstream's), ``Expect`` (the gateway already told
the client to continue), the client's ``X-Request-ID`` (the chassis client
sends the id the gateway validated) and every client-supplied forwarding
header. ``X-Forwarded-For`` is then *set* to the client address the chassis
proxy-headers middleware resolved against the gateway's trusted proxies: the
gateway is the trust boundary, so upstreams get one verified hop instead of a
chain they would have to re-judge with trust lists of their own.
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are the scheme and Host the
client used.

Back to the client the gateway drops ``Server`` and ``Date`` (its own server
adds them: two would be invalid) and, when it rate-limits itself, the
upstream's ``RateLimit-*`` headers, which would otherwise appear twice. A
``Location`` that points into the upstream is made relative, so internal
addresses never leak.
"""

from __future__ import annotations

from collections.abc import Iterable

from chassis.types import Headers, Scope

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

REQUEST_DROPPED = frozenset(
    {
        b"host",
        b"expect",
        b"x-request-id",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
    }
)

RESPONSE_DROPPED = frozenset({b"server", b"date"})

RATE_LIMIT_HEADERS = frozenset(
    {
        b"ratelimit",
        b"ratelimit-policy",
        b"ratelimit-limit",
        b"ratelimit-remaining",
        b"ratelimit-reset",
    }
)


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop too)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return frozenset(named)


def _without(headers: Iterable[tuple[bytes, bytes]], dropped: frozenset[bytes]) -> Headers:
    pairs = list(headers)
    drop = dropped | HOP_BY_HOP | connection_tokens(pairs)
    return [(name, value) for name, value in pairs if name.lower() not in drop]


def upstream_request_headers(scope: Scope) -> Headers:
    """The client's headers minus hop-by-hop and our own, plus X-Forwarded-*."""
    return [*_without(scope["headers"], REQUEST_DROPPED), *forwarding_headers(scope)]


def forwarding_headers(scope: Scope) -> Headers:
    """X-Forwarded-For/-Proto/-Host for a call the gateway makes on behalf of this request."""
    headers: Headers = []
    client = scope.get("client")
    if client:
        headers.append((b"x-forwarded-for", str(client[0]).encode("latin-1")))
    headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode("latin-1")))
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    if host:
        headers.append((b"x-forwarded-host", host))
    return headers


def client_response_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    upstream_origin: bytes,
    strip_rate_limit: bool,
) -> Headers:
    """The upstream's headers minus hop-by-hop and server-owned ones; Location made relative."""
    dropped = RESPONSE_DROPPED | RATE_LIMIT_HEADERS if strip_rate_limit else RESPONSE_DROPPED
    kept = _without(headers, dropped)
    return [
        (name, _relative_location(value, upstream_origin) if name.lower() == b"location" else value)
        for name, value in kept
    ]


def _relative_location(value: bytes, upstream_origin: bytes) -> bytes:
    if upstream_origin and value.lower().startswith(upstream_origin.lower()):
        rest = value[len(upstream_origin) :]
        if not rest or rest.startswith((b"/", b"?", b"#")):
            return rest if rest.startswith(b"/") else b"/" + rest
    return value
