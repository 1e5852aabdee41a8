"""One telemetry layer: request id, server span, RED metrics, access line and deadline.

These were five middlewares, each wrapping ``send``, each reading the scope and
the route template again, and together they cost most of the chassis' own time
per request (docs/adr/0002 and 0005 have the figures). Here one class reads
the request head once, wraps ``send`` once, computes the route label once when
the answer is known, and writes the metric samples, the access line and (only
when the request is sampled) the span from the same captured values.

- **Request id**: a well-formed incoming ``X-Request-ID`` (``[A-Za-z0-9._:-]``,
  at most 128) or 128 random bits; set in `chassis.context.request_id_var` (every
  log line and problem body reads it there) and ``scope["state"]["request_id"]``,
  and echoed on every HTTP answer that passes through, the 413/429/431/504/500 of
  the layers inside included.
- **Span**: one SERVER span per request, never one per ASGI message. The
  sampling draw comes first (`chassis.tracing.sampling`): an unsampled request
  builds no span, attribute or OpenTelemetry context at all.
- **Metrics**: requests by (method, route template, status), duration by (method,
  route), in progress; the metrics path itself is not counted.
- **Access line**: one per request when the answer is known; under a quiet path
  (probes, scrapes) only when it failed; successful answers elsewhere can be
  sampled (``log.access_sample_ratio``). A client that left before any answer is
  recorded as 499.
- **Deadline**: a response that has not *started* within ``timeout_seconds`` is
  cancelled and answered 504 problem+json. Once the headers are out, the body may
  stream as long as it needs (downloads, Server-Sent Events).

Websocket scopes get the request id and the span; lifespan passes through.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from typing import Any

import structlog

from chassis.access_line import write_access_line
from chassis.context import request_id_var
from chassis.disconnects import CLIENT_CLOSED_REQUEST, client_disconnected
from chassis.errors import send_problem
from chassis.middleware.telemetry_parts import (
    RedMetrics,
    RequestHead,
    ServerSpan,
    ServerSpans,
    UnsampledRequest,
)
from chassis.overload import seconds_left_of
from chassis.routing import UNMATCHED_ROUTE, route_template
from chassis.types import ASGIApp, Message, Receive, Scope, Send

_RESPONSE_START = "http.response.start"
_RESPONSE_BODY = "http.response.body"


def new_request_id() -> str:
    """128 random bits as 32 hex digits: uuid4().hex's shape at a tenth of its cost."""
    return os.urandom(16).hex()


class TelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        timeout_seconds: float | None = None,
        deadline_exempt_paths: Sequence[str] = (),
        metrics: bool = False,
        metrics_path: str = "/metrics",
        tracing: bool = False,
        quiet_paths: Sequence[str] = ("/health/", "/metrics"),
        access_sample_ratio: float = 1.0,
        header_name: str = "X-Request-ID",
        tracer_provider: Any = None,
    ) -> None:
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.app = app
        self.service = service
        self.timeout_seconds = timeout_seconds
        #: Path prefixes without a deadline (long polls, uploads that must not be cut).
        self.deadline_exempt_paths = tuple(deadline_exempt_paths)
        self.quiet_paths = tuple(quiet_paths)
        self.access_sample_ratio = access_sample_ratio
        self._header = header_name.lower().encode("latin-1")
        self._metrics = RedMetrics(service, metrics_path) if metrics else None
        self._tracing = ServerSpans(tracer_provider) if tracing else None
        self._timeout_logger = structlog.get_logger("chassis.timeout")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await self._http(scope, receive, send)
        elif scope_type == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: PLR0915 - the hot path, kept in one frame on purpose
        started_at = time.perf_counter()
        head = RequestHead(scope["headers"], self._header)
        request_id = head.request_id or new_request_id()
        state = scope["state"] = dict(scope.get("state") or {})
        state["request_id"] = request_id
        id_token = request_id_var.set(request_id)
        span = self._tracing.start(scope, head) if self._tracing is not None else None
        metrics = self._metrics
        counted = metrics is not None and metrics.counts(scope["path"])
        if counted:
            metrics.in_progress.inc()  # type: ignore[union-attr]

        id_header = (self._header, request_id.encode("ascii"))
        header_name = self._header
        status = 0
        sent_bytes = 0
        expiry: asyncio.TimerHandle | None = None
        expired = False

        async def send_answer(message: Message) -> None:
            nonlocal status, sent_bytes, expiry
            message_type = message["type"]
            if message_type == _RESPONSE_BODY:
                sent_bytes += len(message.get("body", b""))
            elif message_type == _RESPONSE_START:
                status = message["status"]
                if expiry is not None:
                    # Started in time: the body may stream for as long as it needs.
                    expiry.cancel()
                    expiry = None
                headers = list(message.get("headers", ()))
                # A proxying app may already carry the id it forwarded; never send two.
                if not any(name.lower() == header_name for name, _ in headers):
                    headers.append(id_header)
                message["headers"] = headers
            await send(message)

        task: asyncio.Task[Any] | None = None
        if self.timeout_seconds is not None and not (
            self.deadline_exempt_paths and scope["path"].startswith(self.deadline_exempt_paths)
        ):
            task = asyncio.current_task()

            def expire() -> None:
                nonlocal expired, expiry
                expired = True
                expiry = None
                task.cancel()  # type: ignore[union-attr]

            # A chassis caller's own deadline (X-Request-Deadline) shortens ours: past it,
            # nobody is waiting for the answer.
            timeout = self.timeout_seconds
            left = seconds_left_of(head.deadline) if head.deadline is not None else None
            if left is not None and 0 < left < timeout:
                timeout = left
            expiry = asyncio.get_running_loop().call_later(timeout, expire)

        failed = True
        error: BaseException | None = None
        try:
            try:
                await self.app(scope, receive, send_answer)
            except asyncio.CancelledError:
                if not expired or task is None or task.uncancel() > 0:
                    raise
                # Our deadline, not a shutdown: answer 504 unless the answer had started.
                await self._deadline_passed(scope, send_answer, started=bool(status))
            failed = False
        except BaseException as exc:
            error = exc
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
            request_id_var.reset(id_token)
            if not status:
                # Unanswered: a client that left (the error guard marked it), or a
                # request that raised, which the server answers with a 500.
                status = CLIENT_CLOSED_REQUEST if client_disconnected(scope) else 500
            method = scope["method"]
            route = route_template(scope)
            if counted:
                metrics.in_progress.dec()  # type: ignore[union-attr]
                metrics.observe(  # type: ignore[union-attr]
                    method,
                    route or UNMATCHED_ROUTE,
                    status,
                    time.perf_counter() - started_at,
                    span.exemplar() if span is not None else None,
                )
            if span is not None:
                span.finish(scope, method, route, status, error)
            self._access_line(
                scope,
                head,
                request_id,
                span,
                method,
                route,
                status,
                sent_bytes,
                started_at,
                failed=failed,
            )

    async def _deadline_passed(self, scope: Scope, send: Send, *, started: bool) -> None:
        if started:
            self._timeout_logger.warning(
                "request_deadline_after_response_start",
                path=scope["path"],
                timeout_seconds=self.timeout_seconds,
            )
            return
        self._timeout_logger.warning(
            "request_deadline_exceeded",
            method=scope["method"],
            path=scope["path"],
            timeout_seconds=self.timeout_seconds,
        )
        await send_problem(
            send, 504, title="Gateway Timeout", detail="The request did not complete in time."
        )

    def _access_line(  # noqa: PLR0917 - the captured values, in the line's order
        self,
        scope: Scope,
        head: RequestHead,
        request_id: str,
        span: ServerSpan | UnsampledRequest | None,
        method: str,
        route: str | None,
        status: int,
        sent_bytes: int,
        started_at: float,
        *,
        failed: bool,
    ) -> None:
        if status < 400 and not failed:
            if self.quiet_paths and scope["path"].startswith(self.quiet_paths):
                return
            if self.access_sample_ratio < 1.0 and random.random() >= self.access_sample_ratio:  # noqa: S311
                return
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": method,
            "route": route or UNMATCHED_ROUTE,
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started_at) * 1000, 3),
            "bytes": sent_bytes,
            "client": client[0] if client else None,
            "request_id": request_id,
            "user_agent": head.user_agent,
        }
        if span is not None:
            span.annotate(fields)
        if head.trace_id and "trace_id" not in fields:
            # Unsampled, but the caller's trace id still joins this line to its logs.
            fields["trace_id"] = format(head.trace_id, "032x")
        if failed:
            # The app raised: either nothing was sent, or the response was cut short.
            fields["failed"] = True
        write_access_line(fields, error=failed or status >= 500)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = RequestHead(scope["headers"], self._header)
        request_id = head.request_id or new_request_id()
        state = scope["state"] = dict(scope.get("state") or {})
        state["request_id"] = request_id
        id_token = request_id_var.set(request_id)
        span = self._tracing.start(scope, head) if self._tracing is not None else None
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            request_id_var.reset(id_token)
            if span is not None:
                span.finish(scope, "WS", route_template(scope), None, error)
