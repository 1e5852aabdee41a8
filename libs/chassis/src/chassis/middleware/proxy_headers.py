"""Real client address and scheme from X-Forwarded-For/-Proto, only from trusted proxies.

When the direct peer (``scope["client"]``) is inside one of the
``trusted_proxies`` networks, the client becomes the right-most
X-Forwarded-For address that is not itself a trusted proxy (each proxy appends
the peer it saw, so everything left of the first untrusted hop could have been
written by the client), and the scheme becomes the right-most
X-Forwarded-Proto value (the one the nearest trusted proxy set). From any other
peer both headers are ignored, so a client cannot fake its address for rate
limits or its scheme for HSTS. X-Forwarded-Host is never used: the Host header
is what the trusted-host check validates.

The caller's scope is never mutated: a changed scope is a shallow copy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import Any

from chassis.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PROTO = b"x-forwarded-proto"
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

_HANDLED_SCOPES = frozenset({"http", "websocket"})


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str]) -> None:
        self.app = app
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies
        )
        # Peers repeat (a handful of proxies), so the membership test is cached per address.
        self._trusted_text = functools.lru_cache(maxsize=1024)(self._is_trusted_text)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if not self.networks or scope_type not in _HANDLED_SCOPES:
            await self.app(scope, receive, send)
            return

        forwarded_for: list[bytes] = []
        forwarded_proto: bytes | None = None
        for name, value in scope["headers"]:
            if name == _FORWARDED_FOR:
                forwarded_for.append(value)
            elif name == _FORWARDED_PROTO:
                forwarded_proto = value
        if not forwarded_for and forwarded_proto is None:
            await self.app(scope, receive, send)
            return

        peer = scope.get("client")
        if not peer or not self._trusted_text(peer[0]):
            await self.app(scope, receive, send)
            return

        changes: dict[str, Any] = {}
        if forwarded_proto is not None:
            scheme = _scheme(forwarded_proto, websocket=scope_type == "websocket")
            if scheme is not None and scheme != scope.get("scheme"):
                changes["scheme"] = scheme
        if forwarded_for:
            client = self._client_from(b",".join(forwarded_for))
            if client is not None and client != peer[0]:
                changes["client"] = (client, 0)
        if changes:
            scope = {**scope, **changes}
        await self.app(scope, receive, send)

    def is_trusted(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def _is_trusted_text(self, host: str) -> bool:
        address = _parse_ip(host)
        return address is not None and self.is_trusted(address)

    def _client_from(self, header: bytes) -> str | None:
        """The right-most hop that is not a trusted proxy; None if it cannot be told."""
        hops = [hop.strip() for hop in header.decode("latin-1").split(",")]
        client: str | None = None
        for hop in reversed(hops):
            address = _parse_ip(hop)
            if address is None:
                # Not an address (``unknown``, obfuscated): the chain cannot be followed
                # further, so keep the last hop we could verify.
                break
            client = str(address)
            if not self.is_trusted(address):
                break
        return client


def _parse_ip(text: str) -> IPAddress | None:
    candidate = text.strip()
    if candidate.startswith("["):
        # "[2001:db8::1]:443" -> "2001:db8::1"
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:
        # "203.0.113.7:51234" -> "203.0.113.7"
        candidate = candidate.partition(":")[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def _scheme(value: bytes, *, websocket: bool) -> str | None:
    last = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
    return (_WS_SCHEMES if websocket else _HTTP_SCHEMES).get(last)
