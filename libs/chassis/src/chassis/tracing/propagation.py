"""Carry W3C trace context across processes: HTTP calls, events, jobs.

The server span and the HTTP client instrumentation cover most of it; these
helpers are for everything else that crosses a process (an event envelope's
``trace`` field, an Arq job's keyword arguments, the chassis HTTP client's
headers) and for a request served unsampled, which has no span to inject.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate

from chassis.tracing.sampling import unsampled_trace, unsampled_traceparent


def inject_trace_context(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """`carrier` (or a new dict) with ``traceparent``/``tracestate`` of the active span.

    Under a request served unsampled there is no active span: the header then
    says "not sampled", with the request's own trace id when it came with one,
    so that the next service keeps the decision instead of drawing again.
    """
    headers: dict[str, str] = {} if carrier is None else carrier
    propagate.inject(headers)
    if "traceparent" not in headers:
        trace_id = unsampled_trace.get()
        if trace_id is not None:
            headers["traceparent"] = unsampled_traceparent(trace_id)
    return headers


def extract_trace_context(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a consumer should start its span under (empty when nothing was sent)."""
    return propagate.extract(dict(carrier or {}))
