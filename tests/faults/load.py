"""A steady, bounded load: one request every 1/rate seconds, each answer recorded.

Requests start on a fixed schedule whether or not earlier ones have answered
(an open-loop load, as real clients behave), up to `max_in_flight` at once, so
a hung dependency shows up as slow answers, not as a slower client. Every
outcome is kept: status, latency, body when it is a problem, or the transport
error's type.

`Patient` is the client a scenario uses when the gateway's latency is not what
it judges: it sends each request again, unchanged (an order keeps its
Idempotency-Key), while the gateway answers that orders was too slow for its
deadline, so a loaded machine's 504 is a retry, and only a request never
answered is a failure.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
Build = Callable[[httpx.AsyncClient], httpx.Request]

#: How long a `Patient` client keeps one request before it gives up: a machine loaded
#: past this is not slow but broken.
PATIENCE_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 0.5


def too_slow(response: httpx.Response) -> bool:
    """The gateway's own answers to a slow upstream: its deadline passed (504), or the
    breaker those timeouts opened failed the call fast (503 "circuit open")."""
    if response.status_code == 504:
        return True
    return response.status_code == 503 and "circuit open" in response.text


@dataclass
class Patient:
    """Sends each request until the gateway stops answering `too_slow` (up to `patience`)."""

    patience: float = PATIENCE_SECONDS
    retried: int = 0
    """Answers sent again because they were `too_slow`."""

    def send(self, build: Build) -> Send:
        """A `Send` that builds its request once and sends it again while it is too slow."""

        async def send(client: httpx.AsyncClient) -> httpx.Response:
            request = build(client)
            deadline = time.monotonic() + self.patience
            while True:
                response = await client.send(request)
                if not too_slow(response) or time.monotonic() > deadline:
                    return response
                self.retried += 1
                await asyncio.sleep(RETRY_PAUSE_SECONDS)

        return send

    def place(self, order: dict[str, Any], auth: dict[str, str]) -> Send:
        """POST a new order per call, under its own Idempotency-Key: placed once however often
        it is sent."""
        return self.send(
            lambda c: c.build_request(
                "POST",
                "/api/v1/orders",
                json=order,
                headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
            )
        )

    def get(self, path: str, headers: dict[str, str]) -> Send:
        return self.send(lambda c: c.build_request("GET", path, headers=headers))


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
