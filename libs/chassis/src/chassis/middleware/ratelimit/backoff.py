"""A backend that stops asking a failed Redis for a moment, so a dead one costs no time.

Without it, every request during a Redis outage waits for its own connect or
socket timeout before the fail-open (or fail-closed) policy applies: with the
default 1 s connect timeout, each answer of a process whose Redis is gone,
health-checked JWKS included, came a second late (seen in the compose smoke,
where a gateway's JWKS fetch timed out behind it). After a failure this
wrapper raises `RateLimitBackendError` at once for ``retry_seconds``; then the
next hit tries the backend again (the hits that arrive while that probe is
under way still get the error at once), and a success ends the back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chassis.middleware.ratelimit.backend import (
    RateLimitBackend,
    RateLimitBackendError,
    RateLimitResult,
)


class BackingOffBackend:
    """`backend`, skipped for `retry_seconds` after each failure; see the module docstring."""

    def __init__(
        self,
        backend: RateLimitBackend,
        *,
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry_seconds < 0:
            raise ValueError("retry_seconds must be >= 0")
        self.backend = backend
        self.retry_seconds = retry_seconds
        self._clock = clock
        #: While the clock is before this, the backend is not asked.
        self._skip_until = 0.0

    async def hit(
        self,
        key: str,
        *,
        limit: int,
        window_seconds: float,
        now: float | None = None,
    ) -> RateLimitResult:
        if self._skip_until:
            moment = self._clock()
            if moment < self._skip_until:
                raise RateLimitBackendError("rate-limit backend unavailable (backing off)")
            # This hit probes; the ones arriving while it is under way do not.
            self._skip_until = moment + self.retry_seconds
        try:
            result = await self.backend.hit(
                key, limit=limit, window_seconds=window_seconds, now=now
            )
        except RateLimitBackendError:
            self._skip_until = self._clock() + self.retry_seconds
            raise
        self._skip_until = 0.0
        return result
