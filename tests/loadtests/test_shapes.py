"""Load-shape plans: users and spawn rate at each second, and the end of the run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loadtests.shapes import SoakPlan, SpikePlan, StepPlan, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1m30s", 90), ("2.5s", 2.5)],
)
def test_durations_read_like_locust_run_time(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "5m-", "0", "0s", "-3"])
def test_a_malformed_or_empty_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_step_shape_adds_users_each_step_then_stops() -> None:
    plan = StepPlan(step_users=10, step_seconds=30, steps=3, spawn_rate=5)
    assert plan.tick(0) == (10, 5)
    assert plan.tick(29.9) == (10, 5)
    assert plan.tick(30) == (20, 5)
    assert plan.tick(89.9) == (30, 5)
    assert plan.tick(90) is None
    assert plan.duration == 90
    assert plan.step_at(45) == 1


def test_the_spike_shape_jumps_then_returns_to_the_baseline() -> None:
    plan = SpikePlan(
        baseline_users=10,
        spike_users=60,
        before_seconds=20,
        spike_seconds=10,
        after_seconds=30,
        spawn_rate=5,
        spike_spawn_rate=50,
    )
    assert plan.tick(0) == (10, 5)
    assert plan.tick(20) == (60, 50)
    assert plan.tick(29.9) == (60, 50)
    # Down as fast as up: the recovery is what is watched.
    assert plan.tick(30) == (10, 50)
    assert plan.tick(59.9) == (10, 50)
    assert plan.tick(60) is None


def test_the_soak_shape_ramps_then_holds_for_a_bounded_time() -> None:
    plan = SoakPlan(users=40, ramp_seconds=20, hold_seconds=600)
    assert plan.tick(0) == (40, 2)
    assert plan.tick(619) == (40, 2)
    assert plan.tick(620) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: StepPlan(step_users=0, step_seconds=30, steps=3, spawn_rate=5),
        lambda: StepPlan(step_users=10, step_seconds=30, steps=0, spawn_rate=5),
        lambda: SpikePlan(10, 10, 20, 10, 30, 5, 50),
        lambda: SpikePlan(10, 50, -1, 10, 30, 5, 50),
        lambda: SoakPlan(users=10, ramp_seconds=0, hold_seconds=60),
    ],
)
def test_a_plan_that_cannot_run_is_refused(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"must be|cannot be"):
        build()


def test_progress_says_what_each_phase_carried_as_it_ends() -> None:
    from loadtests.shapes import PhaseProgress

    progress = PhaseProgress()
    assert progress.change(now=0.0, users=10, requests=0, failures=0, p95_ms=None) is None
    first = progress.change(now=20.0, users=20, requests=400, failures=2, p95_ms=80.4)
    last = progress.change(now=40.0, users=None, requests=1200, failures=2, p95_ms=120.0)

    assert first == (
        "== phase 1 (10 users, 20 s) done: 400 requests, 2 failed, 20.0 req/s, p95 80 ms"
    )
    assert last == (
        "== phase 2 (20 users, 20 s) done: 800 requests, 0 failed, 40.0 req/s, p95 120 ms"
    )
