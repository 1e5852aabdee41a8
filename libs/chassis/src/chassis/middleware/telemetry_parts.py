"""The parts of the telemetry layer (`chassis.middleware.telemetry`): head, metrics, span."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.metrics.registry import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
)
from chassis.overload import DEADLINE_HEADER_KEY
from chassis.tracing.sampling import (
    ChassisSampler,
    clear_drawn_sampled,
    draw_server_sample,
    mark_drawn_sampled,
    parse_traceparent,
    unsampled_trace,
)
from chassis.types import Scope

_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_USER_AGENT = b"user-agent"
_TRACEPARENT = b"traceparent"
_OTHER_TRACE_HEADERS = (b"tracestate", b"baggage")
_TRACE_HEADERS = (_TRACEPARENT, *_OTHER_TRACE_HEADERS)
_SERVER_ERROR = 500


class RequestHead:
    """What the layer needs from the request headers, read in one pass."""

    __slots__ = (
        "deadline",
        "other_trace_headers",
        "request_id",
        "trace_id",
        "traceparent",
        "user_agent",
    )

    def __init__(self, headers: Sequence[tuple[bytes, bytes]], id_header: bytes) -> None:
        self.request_id: str | None = None
        self.user_agent: str | None = None
        self.traceparent: bytes | None = None
        self.other_trace_headers = False
        #: The caller's X-Request-Deadline, as sent (chassis.overload reads it).
        self.deadline: bytes | None = None
        #: The trace id of an incoming unsampled context (for the access line's trace_id).
        self.trace_id = 0
        for name, value in headers:
            if name == id_header:
                if self.request_id is None and _VALID_ID.fullmatch(value):
                    self.request_id = value.decode("ascii")
            elif name == _USER_AGENT:
                if self.user_agent is None:
                    self.user_agent = value.decode("latin-1")
            elif name == _TRACEPARENT:
                self.traceparent = value
            elif name in _OTHER_TRACE_HEADERS:
                self.other_trace_headers = True
            elif name == DEADLINE_HEADER_KEY:
                self.deadline = value


class RedMetrics:
    """RED samples per route template; labelled children cached, so a request is two lookups."""

    def __init__(self, service: str, metrics_path: str) -> None:
        self.service = service
        self.metrics_path = metrics_path
        self.in_progress = HTTP_REQUESTS_IN_PROGRESS.labels(service)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def counts(self, path: str) -> bool:
        """The scrape of the metrics themselves is not a request worth counting."""
        return not path.startswith(self.metrics_path)

    def observe(
        self, method: str, route: str, status: int, elapsed: float, exemplar: dict[str, str] | None
    ) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_REQUEST_DURATION.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        if exemplar is None:
            children[1].observe(elapsed)
        else:
            children[1].observe(elapsed, exemplar)


class ServerSpans:
    """Starts the request's tracing: a SERVER span if sampled, one context variable if not."""

    def __init__(self, provider: Any = None, tracer_name: str = "chassis.server") -> None:
        #: None: the process's provider, looked up at the first request.
        self.provider = provider
        self.tracer_name = tracer_name
        # Starlette builds the middleware stack on the first (lifespan) message, before the
        # tracing resource sets the provider: a tracer taken then would be a ProxyTracer
        # that looks the provider up again on every span. Taken at the first request instead.
        self._tracer: trace.Tracer | None = None
        #: The ratio to draw at; None when the provider is not the chassis' (the SDK decides).
        self._ratio: float | None = None

    def _first_use(self) -> trace.Tracer:
        provider = self.provider or trace.get_tracer_provider()
        sampler = getattr(provider, "sampler", None)
        self._ratio = sampler.ratio if isinstance(sampler, ChassisSampler) else None
        self._tracer = provider.get_tracer(self.tracer_name)
        return self._tracer

    def start(self, scope: Scope, head: RequestHead) -> ServerSpan | UnsampledRequest:
        tracer = self._tracer or self._first_use()
        drawn = False
        if self._ratio is not None and not head.other_trace_headers:
            if head.traceparent is None:
                if not draw_server_sample(self._ratio):
                    return UnsampledRequest(0)
                drawn = True
            else:
                incoming = parse_traceparent(head.traceparent)
                if incoming is not None and not incoming[1]:
                    head.trace_id = incoming[0]
                    return UnsampledRequest(incoming[0])
        parent = None if drawn else _parent_context(scope)
        method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
        if drawn:
            drawn_token = mark_drawn_sampled()
            try:
                span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
            finally:
                clear_drawn_sampled(drawn_token)
        else:
            span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        return ServerSpan(span, otel_context.attach(trace.set_span_in_context(span, parent)))


class UnsampledRequest:
    """A request traced no further: downstream calls are told so (`chassis.tracing.sampling`).

    The stock instrumentations (SQLAlchemy, Redis, httpx's own transport) are suppressed
    for its duration: each would otherwise start a span for every statement and command
    only for the sampler to drop it, computing its attributes and attaching its context
    first. One context attach here replaces all of that work.
    """

    __slots__ = ("_suppressed", "_token")

    def __init__(self, trace_id: int) -> None:
        self._token = unsampled_trace.set(trace_id)
        self._suppressed = otel_context.attach(
            otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)
        )

    def annotate(self, fields: dict[str, Any]) -> None:
        return None

    def exemplar(self) -> None:
        return None

    def finish(
        self,
        scope: Scope,
        method: str,
        route: str | None,
        status: int | None,
        error: BaseException | None,
    ) -> None:
        otel_context.detach(self._suppressed)
        unsampled_trace.reset(self._token)


class ServerSpan:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Any, token: Token[Any] | object) -> None:
        self._span = span
        self._token = token

    def _context(self) -> Any:
        return self._span.get_span_context()

    def annotate(self, fields: dict[str, Any]) -> None:
        context = self._context()
        fields["trace_id"] = format(context.trace_id, "032x")
        fields["span_id"] = format(context.span_id, "016x")

    def exemplar(self) -> dict[str, str] | None:
        context = self._context()
        if not context.trace_flags.sampled:
            return None
        return {"trace_id": format(context.trace_id, "032x")}

    def finish(
        self,
        scope: Scope,
        method: str,
        route: str | None,
        status: int | None,
        error: BaseException | None,
    ) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        span = self._span
        if span.is_recording():
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope.get("path", ""))
            client = scope.get("client")
            if client:
                span.set_attribute("client.address", client[0])
            if status is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= _SERVER_ERROR and error is None:
                    span.set_status(Status(StatusCode.ERROR))
        span.end()


def _parent_context(scope: Scope) -> otel_context.Context | None:
    carrier: dict[str, str] | None = None
    for name, value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            if carrier is None:
                carrier = {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return extract(carrier) if carrier else None
