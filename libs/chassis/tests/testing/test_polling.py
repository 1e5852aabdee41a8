"""`eventually`: polls sync and async conditions and fails once its deadline passes."""

from __future__ import annotations

import time

import pytest

from chassis.testing import eventually


async def test_a_condition_already_true_returns_at_once() -> None:
    calls: list[None] = []

    def condition() -> bool:
        calls.append(None)
        return True

    started = time.monotonic()
    await eventually(condition, within=5)

    assert len(calls) == 1
    assert time.monotonic() - started < 1


async def test_a_sync_condition_is_polled_until_it_holds() -> None:
    calls: list[None] = []

    def third_time_lucky() -> bool:
        calls.append(None)
        return len(calls) >= 3

    await eventually(third_time_lucky, within=5, step=0.001)

    assert len(calls) == 3


async def test_an_async_condition_is_awaited() -> None:
    calls: list[None] = []

    async def second_time() -> bool:
        calls.append(None)
        return len(calls) >= 2

    await eventually(second_time, within=5, step=0.001)

    assert len(calls) == 2


async def test_a_condition_that_stays_false_fails_after_the_deadline() -> None:
    calls: list[None] = []

    def never() -> bool:
        calls.append(None)
        return False

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"condition not met within 0\.1s$"):
        await eventually(never, within=0.1, step=0.01)
    elapsed = time.monotonic() - started

    assert 0.1 <= elapsed < 2
    assert len(calls) >= 2


async def test_the_failure_carries_the_message() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"within 0\.05s: the relay sent nothing"):
        await eventually(never, within=0.05, message="the relay sent nothing")


async def test_the_condition_is_tried_once_more_after_the_deadline() -> None:
    calls: list[None] = []

    def true_once_the_deadline_passed() -> bool:
        calls.append(None)
        time.sleep(0.06)  # a slow condition: the deadline passes while it runs
        return len(calls) >= 2

    await eventually(true_once_the_deadline_passed, within=0.05, step=0.001)

    assert len(calls) == 2
