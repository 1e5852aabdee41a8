"""A steady, bounded load: one request every 1/rate seconds, each answer recorded.

Requests start on a fixed schedule whether or not earlier ones have answered
(an open-loop load, as real clients behave), up to `max_in_flight` at once, so
a hung dependency shows up as slow answers, not as a slower client. Every
outcome is kept: status, latency, body when it is a problem, or the transport
error's type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Outcome:
    started: float
    """monotonic time the request was sent"""
    latency: float
    status: int | None = None
    error: str | None = None
    content_type: str = ""
    body: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 500


@dataclass
class SteadyLoad:
    """Sends `send(client)` at `rate` per second from `start()` until `stop()`."""

    client: httpx.AsyncClient
    send: Send
    rate: float
    max_in_flight: int = 50
    #: While False the load sends nothing (an emulated load balancer took the target out).
    admit: Callable[[], bool] = lambda: True
    outcomes: list[Outcome] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> SteadyLoad:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> list[Outcome]:
        """Stop sending, wait for the answers in flight, return every outcome."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)
        return self.outcomes

    def between(self, start: float, end: float) -> list[Outcome]:
        """Outcomes of requests sent in [start, end) (monotonic times)."""
        return [o for o in self.outcomes if start <= o.started < end]

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while True:
            if self.admit() and len(self._pending) < self.max_in_flight:
                task = asyncio.create_task(self._one())
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            next_at += interval
            await asyncio.sleep(max(next_at - time.monotonic(), 0))

    async def _one(self) -> None:
        started = time.monotonic()
        outcome = Outcome(started=started, latency=0.0)
        try:
            response = await self.send(self.client)
        except httpx.TransportError as exc:
            outcome.error = type(exc).__name__
        else:
            outcome.status = response.status_code
            outcome.content_type = response.headers.get("content-type", "")
            if response.status_code >= 400:
                outcome.body = response.text[:300]
        outcome.latency = time.monotonic() - started
        self.outcomes.append(outcome)


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts by status (and by transport error), for assertion messages."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = str(outcome.status) if outcome.status is not None else str(outcome.error)
        counts[key] = counts.get(key, 0) + 1
    return counts
