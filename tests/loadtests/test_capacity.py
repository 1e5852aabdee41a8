"""Capacity analysis on synthetic timelines: steps cut out, the knee found, the report written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.capacity import (
    Second,
    StepResult,
    analyse,
    capacity,
    load_timeline,
    main,
    measure,
    report,
    settle_for,
)
from loadtests.shapes import StepPlan
from loadtests.slo import Breach, Objective

OBJECTIVES = {
    "orders-read": Objective(error_rate=0.01, p95_ms=300, p99_ms=600),
    "auth": Objective(error_rate=0.01, p95_ms=2000, p99_ms=4000),
}
PLAN = StepPlan(step_users=10, step_seconds=10, steps=4, spawn_rate=5)
START = 1_000_000.0


def fill(
    timeline: dict[int, dict[str, Second]],
    *,
    first: int,
    seconds: int,
    group: str = "orders-read",
    requests: int = 50,
    failures: int = 0,
    ms: int = 100,
) -> None:
    for second in range(first, first + seconds):
        timeline.setdefault(second, {})[group] = Second(requests, failures, {ms: requests})


def stepped(
    latencies: list[int], *, failures: list[int] | None = None
) -> dict[int, dict[str, Second]]:
    """A timeline where step i answers in latencies[i] ms, 10 steady seconds each."""
    timeline: dict[int, dict[str, Second]] = {}
    for index, ms in enumerate(latencies):
        first = int(START) + index * 10
        # The first seconds of a step are ramp-up: slow on purpose, they must not count.
        fill(timeline, first=first, seconds=3, ms=9000)
        fill(
            timeline,
            first=first + 3,
            seconds=7,
            ms=ms,
            failures=(failures or [0] * len(latencies))[index],
        )
    return timeline


def run(timeline: dict[int, dict[str, Second]]) -> list[StepResult]:
    return analyse(timeline, plan=PLAN, started_at=START, settle_seconds=3, objectives=OBJECTIVES)


def test_each_step_is_measured_after_its_settle_time() -> None:
    steps = run(stepped([100, 150, 200, 250]))
    assert [step.users for step in steps] == [10, 20, 30, 40]
    assert all(step.seconds == 7 for step in steps)
    assert [step.throughput for step in steps] == [50.0] * 4
    orders = [next(g for g in step.groups if g.group == "orders-read") for step in steps]
    assert [group.p95_ms for group in orders] == [100, 150, 200, 250]
    assert capacity(steps) == steps[-1]


def test_the_knee_is_the_last_step_before_the_first_breach() -> None:
    steps = run(stepped([100, 200, 400, 250]))
    best = capacity(steps)
    assert best is not None
    assert best.index == 1
    assert steps[2].breaches == (Breach("orders-read", "p95_ms", 400, 300),)
    # Step 4 holds again, but capacity only counts load the system sustained while it grew.
    assert steps[3].holds


def test_an_error_budget_breach_also_ends_the_capacity() -> None:
    # 50 requests a second for 7 s = 350; 4 failures is 1.1 %.
    steps = run(stepped([100, 100, 100, 100], failures=[0, 0, 1, 0]))
    assert steps[2].failures == 7
    best = capacity(steps)
    assert best is not None
    assert best.index == 1


def test_no_capacity_when_the_first_step_already_breaches() -> None:
    assert capacity(run(stepped([900, 100, 100, 100]))) is None


def test_a_step_without_traffic_does_not_hold() -> None:
    timeline = stepped([100, 100])  # steps 3 and 4 have nothing (the target went away)
    steps = run(timeline)
    assert not steps[2].holds
    assert not steps[2].breaches
    best = capacity(steps)
    assert best is not None
    assert best.index == 1


def test_measure_counts_whole_seconds_inside_the_window() -> None:
    timeline: dict[int, dict[str, Second]] = {}
    fill(timeline, first=100, seconds=10, requests=10)
    seconds, groups, _ = measure(timeline, start=101.5, end=105.0, objectives=OBJECTIVES)
    assert seconds == 3  # 102, 103, 104
    assert next(g for g in groups if g.group == "orders-read").requests == 30


def test_settle_defaults_to_a_third_of_a_step_within_bounds() -> None:
    assert settle_for(30, "") == 10
    assert settle_for(9, "") == 4.5  # at least 5 s, but never more than half a step
    assert settle_for(300, "") == 100
    assert settle_for(30, "4s") == 4


def test_a_settle_as_long_as_a_step_is_refused() -> None:
    with pytest.raises(ValueError, match="settle"):
        analyse({}, plan=PLAN, started_at=START, settle_seconds=10, objectives=OBJECTIVES)


def write_timeline(directory: Path, timeline: dict[int, dict[str, Second]]) -> None:
    plan = {"kind": "step", "step_users": 10, "step_seconds": 10.0, "steps": 4, "spawn_rate": 5}
    data = {
        "started_at": START - 0.2,
        "host": "http://127.0.0.1:8000",
        "plan": plan,
        "targets": [[START, 10], [START + 10, 20], [START + 20, 30], [START + 30, 40]],
        "seconds": {
            str(second): {
                group: {
                    "requests": cell.requests,
                    "failures": cell.failures,
                    "histogram": {str(k): v for k, v in cell.histogram.items()},
                }
                for group, cell in groups.items()
            }
            for second, groups in timeline.items()
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "timeline.json").write_text(json.dumps(data))


def test_the_timeline_file_loads_back_with_int_keys(tmp_path: Path) -> None:
    timeline = stepped([100])
    write_timeline(tmp_path, timeline)
    assert load_timeline(json.loads((tmp_path / "timeline.json").read_text())) == timeline


def test_the_report_writes_a_summary_and_a_png(tmp_path: Path) -> None:
    write_timeline(tmp_path, stepped([100, 200, 400, 800]))
    best = report(tmp_path, objectives=OBJECTIVES, settle_seconds=3)
    assert best is not None
    assert best.users == 20
    summary = (tmp_path / "summary.md").read_text()
    assert "**Capacity: step 2, 20 users, 50.0 requests/s** with every SLO met." in summary
    assert "Step 3 (30 users) broke: orders-read p95_ms." in summary
    assert "| 3 | 30 | 50.0 | 0.00% | 400 | 400 | breach | 0 of 150 |" in summary
    assert (tmp_path / "capacity.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_command_reanalyses_a_report_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_timeline(tmp_path, stepped([100, 100, 100, 100]))
    assert main(["--analyse", str(tmp_path), "--step-time", "10s", "--settle", "3s"]) == 0
    assert "Every step held: the knee is above the last step" in capsys.readouterr().out


def test_a_timeline_of_another_shape_is_refused(tmp_path: Path) -> None:
    write_timeline(tmp_path, {})
    data = json.loads((tmp_path / "timeline.json").read_text())
    data["plan"]["kind"] = "spike"
    (tmp_path / "timeline.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not the timeline of a step run"):
        report(tmp_path, objectives=OBJECTIVES, settle_seconds=3)
