"""A lean server-span middleware: one span per request, none per ASGI message.

The stock OpenTelemetry ASGI instrumentation also opens a span for every
``send``/``receive`` and computes its attributes whether or not the span is
sampled; measured here that cost most of the chassis' throughput. This one
opens a single SERVER span, sets attributes only when the span records, and
names it from the route template once routing has happened.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.routing import route_template
from chassis.types import ASGIApp, Message, Receive, Scope, Send

_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


class TracingMiddleware:
    def __init__(self, app: ASGIApp, *, tracer_name: str = "chassis.server") -> None:
        self.app = app
        self.tracer_name = tracer_name
        # Starlette builds the middleware stack on the first (lifespan) message, before the
        # tracing resource sets the provider: a tracer taken then would be a ProxyTracer
        # that looks the provider up again on every span. Taken at the first request instead.
        self._tracer: trace.Tracer | None = None

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            self._tracer = trace.get_tracer(self.tracer_name)
        return self._tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        parent = _parent_context(scope)
        method = scope.get("method", "WS") if scope_type == "http" else "WS"
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        recording = span.is_recording()
        status_holder: list[int] = []

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder.append(message["status"])
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_with_status if recording else send)
        except BaseException as exc:
            if recording:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            if recording:
                _finish_attributes(span, scope, method, status_holder)
            span.end()


def _parent_context(scope: Scope) -> otel_context.Context | None:
    carrier: dict[str, str] | None = None
    for name, value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return extract(carrier) if carrier else None


def _finish_attributes(span: Any, scope: Scope, method: str, status_holder: list[int]) -> None:
    template = route_template(scope)
    if template:
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
    span.set_attribute("http.request.method", method)
    span.set_attribute("url.path", scope.get("path", ""))
    client = scope.get("client")
    if client:
        span.set_attribute("client.address", client[0])
    if status_holder:
        status = status_holder[0]
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
