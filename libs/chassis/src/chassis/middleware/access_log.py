"""Access log: one structured line per HTTP request, written when it completes.

The line names the route *template* (``/items/{item_id}``) that Starlette put
in ``scope["route"]``, so logs group by endpoint; the raw path is a separate
field. Requests under a quiet path prefix (health probes, metrics scrapes) are
logged only when they fail (status >= 400). The request id comes from
``scope["state"]``, where the request-id middleware (inside this one) puts it.
A request whose client went away before any answer is logged as ``499``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog

from chassis.disconnects import CLIENT_CLOSED_REQUEST, client_disconnected
from chassis.routing import UNMATCHED_ROUTE, route_template
from chassis.types import ASGIApp, Message, Receive, Scope, Send

_USER_AGENT = b"user-agent"


class AccessLogMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Sequence[str] = ("/health/", "/metrics"),
        logger_name: str = "chassis.access",
    ) -> None:
        self.app = app
        self.quiet_paths = tuple(quiet_paths)
        # One logger per instance: a cached structlog logger never outlives its app.
        self._logger = structlog.get_logger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 0
        sent_bytes = 0
        started_at = time.perf_counter()

        async def send_counting(message: Message) -> None:
            nonlocal status, sent_bytes
            message_type = message["type"]
            if message_type == "http.response.body":
                sent_bytes += len(message.get("body", b""))
            elif message_type == "http.response.start":
                status = message["status"]
            await send(message)

        failed = True
        try:
            await self.app(scope, receive, send_counting)
            failed = False
        finally:
            if not status:
                # Unanswered: a client that left (the error guard marked it), or a
                # request that raised, which the server answers with a 500.
                status = CLIENT_CLOSED_REQUEST if client_disconnected(scope) else 500
            self._log(scope, status, sent_bytes, started_at, failed=failed)

    def _log(
        self, scope: Scope, status: int, sent_bytes: int, started_at: float, *, failed: bool
    ) -> None:
        if (
            status < 400
            and not failed
            and self.quiet_paths
            and scope["path"].startswith(self.quiet_paths)
        ):
            return
        duration_ms = round((time.perf_counter() - started_at) * 1000, 3)
        state = scope.get("state")
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": route_template(scope) or UNMATCHED_ROUTE,
            "path": scope["path"],
            "status": status,
            "duration_ms": duration_ms,
            "bytes": sent_bytes,
            "client": client[0] if client else None,
            "request_id": state.get("request_id") if state else None,
            "user_agent": _user_agent(scope),
        }
        if failed:
            # The app raised: either nothing was sent, or the response was cut short.
            fields["failed"] = True
        if failed or status >= 500:
            self._logger.error("http_request", **fields)
        else:
            self._logger.info("http_request", **fields)


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _USER_AGENT:
            return str(value.decode("latin-1"))
    return None
