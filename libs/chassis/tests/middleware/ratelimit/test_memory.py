"""The in-process backend on its own: exact counts and bounded memory."""

from __future__ import annotations

from typing import Any

import pytest

from chassis.middleware.ratelimit import MemorySlidingWindow, RateLimitResult


async def test_a_hit_reports_what_is_left_and_when_a_slot_comes_back(clock: Any) -> None:
    backend = MemorySlidingWindow(clock=clock)
    first = await backend.hit("k", limit=2, window_seconds=10)
    clock.advance(4)
    second = await backend.hit("k", limit=2, window_seconds=10)
    refused = await backend.hit("k", limit=2, window_seconds=10)

    assert first == RateLimitResult(True, 2, 1, 10.0, 0.0)
    assert second == RateLimitResult(True, 2, 0, 6.0, 0.0)
    assert refused == RateLimitResult(False, 2, 0, 6.0, 6.0)


async def test_an_explicit_now_overrides_the_clock(clock: Any) -> None:
    backend = MemorySlidingWindow(clock=clock)
    await backend.hit("k", limit=1, window_seconds=10, now=5.0)
    later = await backend.hit("k", limit=1, window_seconds=10, now=15.0)

    assert later.allowed


async def test_idle_keys_are_swept(clock: Any) -> None:
    backend = MemorySlidingWindow(clock=clock, sweep_interval_seconds=30)
    for n in range(100):
        await backend.hit(f"idle-{n}", limit=5, window_seconds=10)
    clock.advance(20)
    await backend.hit("busy", limit=5, window_seconds=60)
    assert len(backend) == 101  # the sweep waits for its interval

    clock.advance(15)
    await backend.hit("busy", limit=5, window_seconds=60)

    assert len(backend) == 1
    clock.advance(100)
    await backend.hit("newcomer", limit=5, window_seconds=10)
    assert len(backend) == 1  # "busy" went idle too


async def test_past_max_keys_the_least_recently_used_key_is_forgotten(clock: Any) -> None:
    backend = MemorySlidingWindow(clock=clock, max_keys=2)
    await backend.hit("a", limit=1, window_seconds=60)
    await backend.hit("b", limit=1, window_seconds=60)
    assert not (await backend.hit("a", limit=1, window_seconds=60)).allowed  # "a" is now recent
    await backend.hit("c", limit=1, window_seconds=60)  # evicts "b"

    assert len(backend) == 2
    assert (await backend.hit("b", limit=1, window_seconds=60)).allowed
    assert not (await backend.hit("c", limit=1, window_seconds=60)).allowed


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemorySlidingWindow(max_keys=0)
