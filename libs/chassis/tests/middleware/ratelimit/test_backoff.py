"""The back-off in front of a rate-limit backend: a failed backend is not asked for a while."""

from __future__ import annotations

import asyncio

import pytest

from chassis.middleware.ratelimit import RateLimitBackendError, RateLimitResult
from chassis.middleware.ratelimit.backoff import BackingOffBackend

OK = RateLimitResult(
    allowed=True, limit=10, remaining=9, reset_after_seconds=1.0, retry_after_seconds=0.0
)


class Flaky:
    """A backend that fails while `down`, counting the calls it gets."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def hit(
        self, key: str, *, limit: int, window_seconds: float, now: float | None = None
    ) -> RateLimitResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise RateLimitBackendError("down")
        return OK


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def hit(backend: BackingOffBackend) -> RateLimitResult:
    return await backend.hit("ip:192.0.2.1", limit=10, window_seconds=60)


async def test_after_a_failure_the_backend_is_skipped_until_the_retry_then_probed() -> None:
    inner, clock = Flaky(), Clock()
    backend = BackingOffBackend(inner, retry_seconds=1.0, clock=clock)

    with pytest.raises(RateLimitBackendError):
        await hit(backend)
    for _ in range(5):
        clock.now += 0.15
        with pytest.raises(RateLimitBackendError):
            await hit(backend)
    assert inner.calls == 1  # the five hits within the second never reached it

    clock.now += 0.3  # past the retry: the next hit probes, and fails again
    with pytest.raises(RateLimitBackendError):
        await hit(backend)
    assert inner.calls == 2

    inner.down = False
    clock.now += 0.5
    with pytest.raises(RateLimitBackendError):
        await hit(backend)  # still backing off from the second failure
    clock.now += 0.6
    assert await hit(backend) == OK
    assert await hit(backend) == OK
    assert inner.calls == 4  # healthy again: every hit asks the backend


async def test_hits_during_a_probe_do_not_pile_onto_the_backend() -> None:
    inner, clock = Flaky(), Clock()
    backend = BackingOffBackend(inner, retry_seconds=1.0, clock=clock)
    with pytest.raises(RateLimitBackendError):
        await hit(backend)
    clock.now += 2

    inner.gate = asyncio.Event()
    inner.down = False
    probe = asyncio.create_task(hit(backend))
    await asyncio.sleep(0)
    with pytest.raises(RateLimitBackendError):
        await hit(backend)  # answered at once while the probe waits on the backend
    inner.gate.set()
    assert await probe == OK
    assert inner.calls == 2


async def test_a_healthy_backend_is_asked_every_time() -> None:
    inner = Flaky()
    inner.down = False
    backend = BackingOffBackend(inner, retry_seconds=1.0)
    for _ in range(3):
        assert await hit(backend) == OK
    assert inner.calls == 3


def test_a_negative_retry_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_seconds"):
        BackingOffBackend(Flaky(), retry_seconds=-1)
