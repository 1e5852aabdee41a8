"""Headers chassis processes exchange about overload: the caller's deadline, the shed mark.

``X-Request-Deadline`` holds the instant (Unix time, seconds with millisecond
decimals) after which the caller no longer waits for the answer. It is absolute,
not a remaining budget, so that time a request spent queued before the server
read it (a busy event loop, a full accept backlog) counts against it; the price is
that the hosts' clocks must agree to within a fraction of the budget (NTP does).

``X-Load-Shed`` marks an answer the server gave without working on the request
(its concurrency limit, a deadline already past), so that a chassis client's
circuit breaker does not take a healthy server's fast refusal for sickness.

A leaf module: the HTTP client writes and reads these, the middleware the other way round.
"""

from __future__ import annotations

import math
import time

from chassis.types import Scope

DEADLINE_HEADER = "X-Request-Deadline"
SHED_HEADER = "X-Load-Shed"
#: The header as ASGI servers give it (lower case, bytes).
DEADLINE_HEADER_KEY = DEADLINE_HEADER.lower().encode("latin-1")


def format_deadline(seconds_from_now: float) -> str:
    """The header value for a deadline `seconds_from_now` seconds away."""
    return f"{time.time() + seconds_from_now:.3f}"


def seconds_left(scope: Scope) -> float | None:
    """Seconds until the caller's deadline (negative once passed); None when it sent none.

    A value that is not a finite number is ignored rather than refused: a deadline
    is advice about the caller's patience, never a reason to fail a request.
    """
    for name, value in scope["headers"]:
        if name == DEADLINE_HEADER_KEY:
            return seconds_left_of(value)
    return None


def seconds_left_of(value: bytes) -> float | None:
    """`seconds_left` for a header value already found (a layer that reads the head once)."""
    try:
        deadline = float(value)
    except ValueError:
        return None
    return deadline - time.time() if math.isfinite(deadline) else None
