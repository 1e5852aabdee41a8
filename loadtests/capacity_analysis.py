"""Capacity analysis: cut a step run's timeline into steps, measure each, find the knee.

Each step is cut out of the timeline, its first ``settle`` seconds dropped (users are
still arriving, signing up and logging in), and the rest measured: throughput, error
rate, p95 and p99 per group. The capacity is the last step of the unbroken run of
steps from the first at which every group meets its SLO. Plain Python: the report
(loadtests.capacity_report) and the command (loadtests.capacity) build on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.endpoints import GROUPS
from loadtests.histogram import Histogram, merge, percentile
from loadtests.shapes import StepPlan
from loadtests.slo import Breach, GroupResult, Objective, evaluate


@dataclass(frozen=True)
class Second:
    """One second of one group: what the timeline holds."""

    requests: int
    failures: int
    histogram: Histogram


Timeline = Mapping[int, Mapping[str, Second]]


@dataclass(frozen=True)
class StepResult:
    index: int
    users: int
    seconds: int
    groups: tuple[GroupResult, ...]
    breaches: tuple[Breach, ...]
    #: Requests and failures of the unmeasured start (users arriving): shown, not judged.
    ramp_requests: int = 0
    ramp_failures: int = 0

    @property
    def requests(self) -> int:
        return sum(group.requests for group in self.groups)

    @property
    def failures(self) -> int:
        return sum(group.failures for group in self.groups)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def holds(self) -> bool:
        # A step that measured nothing proves nothing: it does not hold.
        return self.requests > 0 and not self.breaches

    def worst(self, metric: str) -> float | None:
        values = [getattr(group, metric) for group in self.groups if group.requests]
        values = [value for value in values if value is not None]
        return max(values) if values else None


def load_timeline(data: Mapping[str, Any]) -> Timeline:
    """The ``seconds`` part of a timeline file as typed values."""
    return {
        int(second): {
            group: Second(
                requests=int(cell["requests"]),
                failures=int(cell["failures"]),
                histogram={int(k): int(v) for k, v in cell["histogram"].items()},
            )
            for group, cell in groups.items()
        }
        for second, groups in data["seconds"].items()
    }


def measure(
    timeline: Timeline, *, start: float, end: float, objectives: Mapping[str, Objective]
) -> tuple[int, tuple[GroupResult, ...], tuple[Breach, ...]]:
    """Whole seconds in ``[start, end)``: how long, each group's result, its breaches."""
    first, last = int(start) + (start % 1 > 0), int(end)
    seconds = range(first, last)
    results = []
    for group in GROUPS:
        cells = [timeline[s][group] for s in seconds if group in timeline.get(s, {})]
        histogram = merge(cell.histogram for cell in cells)
        results.append(
            GroupResult(
                group=group,
                requests=sum(cell.requests for cell in cells),
                failures=sum(cell.failures for cell in cells),
                p95_ms=percentile(histogram, 0.95),
                p99_ms=percentile(histogram, 0.99),
            )
        )
    return len(seconds), tuple(results), tuple(evaluate(results, objectives))


def analyse(
    timeline: Timeline,
    *,
    plan: StepPlan,
    started_at: float,
    settle_seconds: float,
    objectives: Mapping[str, Objective],
) -> list[StepResult]:
    """One result per step of ``plan`` that started at ``started_at`` (epoch seconds)."""
    if settle_seconds >= plan.step_seconds:
        raise ValueError("settle must be shorter than a step")
    steps = []
    for index in range(plan.steps):
        step_start = started_at + index * plan.step_seconds
        _, ramp, _ = measure(
            timeline, start=step_start, end=step_start + settle_seconds, objectives=objectives
        )
        seconds, groups, breaches = measure(
            timeline,
            start=step_start + settle_seconds,
            end=step_start + plan.step_seconds,
            objectives=objectives,
        )
        steps.append(
            StepResult(
                index=index,
                users=plan.users_at_step(index),
                seconds=seconds,
                groups=groups,
                breaches=breaches,
                ramp_requests=sum(group.requests for group in ramp),
                ramp_failures=sum(group.failures for group in ramp),
            )
        )
    return steps


def capacity(steps: Sequence[StepResult]) -> StepResult | None:
    """The last step of the unbroken run from the first at which every SLO holds.

    A later step that holds again after a breach is noise (a shared machine, a GC
    pause): capacity is what the system sustained while load only grew.
    """
    found = None
    for step in steps:
        if not step.holds:
            break
        found = step
    return found
