"""The small protocol every rate-limit backend implements, and what a hit returns.

Both backends keep a *sliding log*: the time of every admitted request in the
last window. A fixed window (one counter per minute) lets a client send twice
the limit across a boundary (the end of one minute and the start of the next)
and can only say "retry at the next minute"; the log never admits more than
`limit` requests in any window of `window_seconds`, and because it knows when
the oldest admitted request ages out it gives an exact ``Retry-After``. It costs
one entry per admitted request (at most `limit` per key), which for per-client
limits of tens to hundreds is small. Refused requests are not recorded, so a
client that keeps hammering is let in again as soon as its window frees a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The verdict on one hit.

    `reset_after_seconds` is when the oldest admitted request leaves the window
    (one slot comes back); `retry_after_seconds` is that same delay when the hit
    was refused, and 0 when it was allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after_seconds: float
    retry_after_seconds: float


class RateLimitBackendError(Exception):
    """The backend could not be reached; the caller decides to fail open or closed."""


class RateLimitBackend(Protocol):
    """Counts a hit for `key` and says whether it fits in `limit` per `window_seconds`."""

    async def hit(
        self,
        key: str,
        *,
        limit: int,
        window_seconds: float,
        now: float | None = None,
    ) -> RateLimitResult:
        """Record the hit if allowed; `now` (seconds) overrides the backend's clock.

        Raises `RateLimitBackendError` when the backend is unreachable.
        """
        ...


def result_from_log(
    *, allowed: bool, limit: int, count: int, oldest: float, now: float, window_seconds: float
) -> RateLimitResult:
    """Build a result from the log's size and its oldest entry after this hit."""
    reset_after = max(oldest + window_seconds - now, 0.0) if count else 0.0
    return RateLimitResult(
        allowed=allowed,
        limit=limit,
        remaining=max(limit - count, 0),
        reset_after_seconds=reset_after,
        retry_after_seconds=0.0 if allowed else reset_after,
    )
