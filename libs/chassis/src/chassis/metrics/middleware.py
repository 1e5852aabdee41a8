"""RED metrics per route template, in a pure-ASGI middleware.

Label values come from the matched route's template (``/orders/{order_id}``),
never the raw path, so cardinality stays bounded; unmatched paths share one
label. Labelled children are cached per (method, route, status) so the hot
path is a dict lookup and two increments. A request its client abandoned
before any answer counts as ``499``, a client error, not as a 500.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from chassis.disconnects import CLIENT_CLOSED_REQUEST, client_disconnected
from chassis.metrics.registry import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
)
from chassis.routing import UNMATCHED_ROUTE, route_template
from chassis.types import ASGIApp, Message, Receive, Scope, Send


class MetricsMiddleware:
    def __init__(
        self, app: ASGIApp, *, service: str, exempt_paths: Sequence[str] = ("/metrics",)
    ) -> None:
        self.app = app
        self.service = service
        self.exempt_paths = tuple(exempt_paths)
        self._in_progress = HTTP_REQUESTS_IN_PROGRESS.labels(service)
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_paths):
            await self.app(scope, receive, send)
            return

        status = 0
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self._in_progress.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._in_progress.dec()
            if not status:
                status = CLIENT_CLOSED_REQUEST if client_disconnected(scope) else 500
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        method = scope["method"]
        route = route_template(scope) or UNMATCHED_ROUTE
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = HTTP_REQUESTS.labels(self.service, method, route, str(status))
            self._counters[(method, route, status)] = counter
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = HTTP_REQUEST_DURATION.labels(self.service, method, route)
            self._histograms[(method, route)] = histogram
        counter.inc()
        histogram.observe(elapsed)
