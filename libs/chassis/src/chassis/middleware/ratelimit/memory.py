"""An in-process sliding-log rate limiter: exact, fast, and for one process only.

Each worker keeps its own counts, so N workers would admit N times the limit;
the settings refuse ``rate_limit.backend=memory`` with ``server.workers > 1``.
Memory stays bounded: keys idle for longer than their window are swept, and
past `max_keys` the least recently used key is dropped (which forgets that
client's count - the price of not growing without bound under a key flood).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from chassis.middleware.ratelimit.backend import RateLimitResult, result_from_log


class _Log:
    __slots__ = ("hits", "window_seconds")

    def __init__(self, window_seconds: float) -> None:
        self.hits: deque[float] = deque()
        self.window_seconds = window_seconds


class MemorySlidingWindow:
    """`RateLimitBackend` over a deque of admission times per key."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        sweep_interval_seconds: float = 60.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._max_keys = max_keys
        self._sweep_interval = sweep_interval_seconds
        self._next_sweep: float | None = None
        # Ordered by last use, so idle keys gather at the front.
        self._logs: OrderedDict[str, _Log] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are tracked now."""
        return len(self._logs)

    async def hit(
        self,
        key: str,
        *,
        limit: int,
        window_seconds: float,
        now: float | None = None,
    ) -> RateLimitResult:
        # No await in here: within one event loop a hit is atomic.
        if now is None:
            now = self._clock()
        self._maybe_sweep(now)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log(window_seconds)
            if len(self._logs) > self._max_keys:
                self._logs.popitem(last=False)
        else:
            self._logs.move_to_end(key)
            log.window_seconds = window_seconds
        hits = log.hits
        horizon = now - window_seconds
        while hits and hits[0] <= horizon:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        return result_from_log(
            allowed=allowed,
            limit=limit,
            count=len(hits),
            oldest=hits[0] if hits else now,
            now=now,
            window_seconds=window_seconds,
        )

    def _maybe_sweep(self, now: float) -> None:
        if self._next_sweep is None:
            self._next_sweep = now + self._sweep_interval
            return
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        logs = self._logs
        while logs:
            key, log = next(iter(logs.items()))
            if log.hits and log.hits[-1] > now - log.window_seconds:
                # The least recently used key is still live; the rest are newer.
                break
            del logs[key]
