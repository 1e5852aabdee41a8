"""The web console's built files at ``/console``, under a CSP that allows only its own assets.

The console (``console/`` at the top of the repository, built by ``npm run build``)
is static: hashed assets under ``/console/assets/`` and one ``index.html``. Its
CSP is set here, so the security-headers middleware (which never overwrites a
header the app set) leaves it alone: scripts, styles and connections to this
origin only (``'self'`` covers the same-origin WebSocket), nothing inline,
nothing from elsewhere, no framing.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from chassis.types import ASGIApp, Message, Receive, Scope, Send

logger = structlog.get_logger("gateway.console")

CONSOLE_PATH = "/console"
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Vite puts a content hash in every asset name: they may be cached for good.
IMMUTABLE = b"public, max-age=31536000, immutable"
#: index.html names the current assets: always revalidated, so a deploy shows at once.
REVALIDATE = b"no-cache"


class ConsoleFiles:
    """Static files with the console's CSP and cache headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.csp = CONSOLE_CSP.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hashed = scope.get("path", "").startswith(f"{CONSOLE_PATH}/assets/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != b"cache-control"
                ]
                headers.append((b"content-security-policy", self.csp))
                ok = message["status"] < 400
                headers.append((b"cache-control", IMMUTABLE if hashed and ok else REVALIDATE))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_console(app: FastAPI, directory: Path | None) -> bool:
    """Serve `directory` at /console if it holds a built console; False (and a log) if not."""
    if directory is None:
        return False
    if not (directory / "index.html").is_file():
        logger.warning(
            "console_not_built",
            directory=str(directory),
            hint="npm ci && npm run build in console/",
        )
        return False
    app.mount(CONSOLE_PATH, ConsoleFiles(StaticFiles(directory=directory, html=True)))
    return True
