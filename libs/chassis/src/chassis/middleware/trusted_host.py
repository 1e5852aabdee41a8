"""Host header allowlist, answering 400 problem+json (Starlette's answers plain text).

``"*"`` allows any host; ``"*.example.com"`` allows every subdomain of
example.com (not example.com itself); the port is ignored. Refusing unknown
hosts stops Host-header injection into absolute URLs the app builds (redirects,
links in mails) and DNS-rebinding attacks against internal services.
"""

from __future__ import annotations

from collections.abc import Sequence

from chassis.errors import send_problem
from chassis.types import ASGIApp, Receive, Scope, Send

_HOST = b"host"

_HANDLED_SCOPES = frozenset({"http", "websocket"})


class TrustedHostMiddleware:
    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        patterns = [host.strip().lower() for host in allowed_hosts]
        self.allow_any = "*" in patterns
        self._exact = frozenset(host for host in patterns if not host.startswith("*."))
        # "*.example.com" is kept as ".example.com" for an endswith check.
        self._suffixes = tuple(host[1:] for host in patterns if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if self.allow_any or scope_type not in _HANDLED_SCOPES:
            await self.app(scope, receive, send)
            return

        if self.is_allowed(_host_of(scope)):
            await self.app(scope, receive, send)
        elif scope_type == "websocket":
            # Closing before accept makes the server refuse the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send_problem(send, 400, detail="Invalid host header")

    def is_allowed(self, host: str) -> bool:
        if not host:
            return False
        return host in self._exact or (bool(self._suffixes) and host.endswith(self._suffixes))


def _host_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _HOST:
            return _strip_port(value.decode("latin-1").strip().lower())
    return ""


def _strip_port(host: str) -> str:
    if host.startswith("["):
        # IPv6 literal: "[::1]:8000" -> "[::1]"
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.partition(":")[0]
