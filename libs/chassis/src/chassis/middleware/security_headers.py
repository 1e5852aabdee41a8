"""Security headers on every HTTP response, error answers included.

Adds nosniff, frame denial, a referrer policy, a permissions policy,
cross-origin opener isolation and a Content-Security-Policy; the CSP is relaxed
only on the API docs pages, which run inline bootstrap scripts (their bundles
come from the service itself, `chassis.docs`). Strict-Transport-Security is sent
only when the request arrived over TLS: ``scope["scheme"]`` is trusted as is,
because the proxy-headers middleware (outside this one) rewrites it only for
trusted proxies. A header the app set itself is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence

from chassis.docs_paths import DOCS_PATHS
from chassis.types import ASGIApp, Headers, Message, Receive, Scope, Send

#: What Swagger UI and ReDoc (as `chassis.docs` serves them) need: their bundles, CSS and
#: favicon from the service itself, inline bootstrap scripts and styles, data: images
#: and fonts, and blob: workers (ReDoc's search). No other origin.
DEFAULT_DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; "
    "img-src 'self' data:; "
    "worker-src 'self' blob:; "
    "connect-src 'self'; "
    "frame-ancestors 'none'"
)

DEFAULT_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

_SECURE_SCHEMES = frozenset({"https", "wss"})


class SecurityHeadersMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts_max_age_seconds: int,
        content_security_policy: str,
        docs_paths: Sequence[str] = DOCS_PATHS,
        docs_content_security_policy: str = DEFAULT_DOCS_CSP,
        permissions_policy: str = DEFAULT_PERMISSIONS_POLICY,
    ) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        common: Headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"permissions-policy", permissions_policy.encode("latin-1")),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        csp = (b"content-security-policy", content_security_policy.encode("latin-1"))
        docs_csp = (b"content-security-policy", docs_content_security_policy.encode("latin-1"))
        hsts = (
            b"strict-transport-security",
            f"max-age={hsts_max_age_seconds}; includeSubDomains".encode("latin-1"),
        )
        # Indexed by (is_docs, is_secure): four fixed header sets built once.
        self._header_sets: dict[tuple[bool, bool], Headers] = {
            (False, False): [*common, csp],
            (False, True): [*common, csp, hsts],
            (True, False): [*common, docs_csp],
            (True, True): [*common, docs_csp, hsts],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        extra = self._header_sets[(self._is_docs(scope), scope["scheme"] in _SECURE_SCHEMES)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _is_docs(self, scope: Scope) -> bool:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        return path in self.docs_paths
