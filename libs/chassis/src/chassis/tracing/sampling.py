"""Sampling decided before any span exists, so that an unsampled request costs almost nothing.

The SDK decides sampling inside ``start_span``: by then it has generated ids,
built a span object, and the caller has attached a context and will detach it.
For the nine requests in ten that a 0.1 ratio drops, that was most of what
tracing cost (docs/adr/0005). Here the server layer draws first
(`draw_server_sample`) and only a sampled request reaches the SDK.

An unsampled request must still stay unsampled downstream, or every database
call, Redis command and upstream request it makes would start a trace of its
own at the same ratio, and the next service would draw again. Instead of a
span in the OpenTelemetry context it sets one context variable,
`unsampled_trace`: the `ChassisSampler` drops any root span started under it,
and `chassis.tracing.propagation.inject_trace_context` sends a ``traceparent``
with the sampled flag off, carrying the trace id the request came with.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

#: Trace id of the request this task serves unsampled (0: it came without one).
unsampled_trace: ContextVar[int | None] = ContextVar("chassis_unsampled_trace", default=None)
#: Set by the server layer around ``start_span`` when its own draw chose the request.
_drawn_sampled: ContextVar[bool] = ContextVar("chassis_drawn_sampled", default=False)

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_DROP = SamplingResult(Decision.DROP)
_RECORD = SamplingResult(Decision.RECORD_AND_SAMPLE)


class ChassisSampler(Sampler):
    """Parent-based ratio sampling that honours the server layer's early draw.

    - A span with a parent follows the parent's decision (the SDK's ``ParentBased``).
    - A root started while an unsampled request is served is dropped: it is a
      child in all but name.
    - A root the server layer drew as sampled is recorded (drawing twice would
      sample ``ratio²``).
    - Any other root (a worker's job, a relay pass) is drawn at ``ratio`` by trace id.
    """

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self._parent_based = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(  # noqa: PLR0917 - the SDK's signature
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[Any] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid:
            if _drawn_sampled.get():
                return _RECORD
            if unsampled_trace.get() is not None:
                return _DROP
        return self._parent_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ChassisSampler{{{self.ratio}}}"


def draw_server_sample(ratio: float) -> bool:
    """The early draw for a request that arrived without a trace context."""
    return random.random() < ratio  # noqa: S311 - sampling, not security


def mark_drawn_sampled() -> Any:
    """Tell `ChassisSampler` that the span about to start was drawn; reset with the token."""
    return _drawn_sampled.set(True)


def clear_drawn_sampled(token: Any) -> None:
    _drawn_sampled.reset(token)


def unsampled_traceparent(trace_id: int) -> str:
    if not trace_id:
        trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-00"


def parse_traceparent(value: bytes) -> tuple[int, bool] | None:
    """(trace id, sampled) of a version-00 ``traceparent`` header; None if malformed."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    trace_id = int(match[1], 16)
    if not trace_id or not int(match[2], 16):
        return None
    return trace_id, bool(int(match[3], 16) & 1)
