"""Per-request context carried in contextvars so it follows every await."""

from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
principal_id_var: ContextVar[str | None] = ContextVar("principal_id", default=None)


def get_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return request_id_var.get()


def current_trace_id() -> str | None:
    """The active OpenTelemetry trace id as 32 hex digits, or None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x")
