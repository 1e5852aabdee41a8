"""Carry W3C trace context through message headers (events, jobs).

HTTP is covered by the client and server instrumentation; these two helpers
are for everything else that crosses a process: an event envelope's
``trace`` field, an Arq job's keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate


def inject_trace_context(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """Return `carrier` (or a new dict) with ``traceparent``/``tracestate`` of the active span."""
    headers: dict[str, str] = {} if carrier is None else carrier
    propagate.inject(headers)
    return headers


def extract_trace_context(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a consumer should start its span under (empty when nothing was sent)."""
    return propagate.extract(dict(carrier or {}))
