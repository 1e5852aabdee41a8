"""The Locust side of the load shapes: a ``LoadTestShape`` per plan in ``loadtests.shapes``.

``LOADTEST_SHAPE=step|spike|soak`` picks one (`selected_shape`, read at import: Locust picks
shapes before it parses options); its plan is built from the parsed options on the first
tick, and every change of the user target is recorded in the timeline. Kept apart from
``loadtests.shapes``, whose plans are plain Python that the capacity tool and the tests
import without Locust (and its gevent patching).
"""

from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from typing import ClassVar

from locust import LoadTestShape

from loadtests.shapes import PhaseProgress, Plan, SoakPlan, SpikePlan, StepPlan, parse_duration
from loadtests.timeline import TIMELINE


def build_plan(kind: str, options: Namespace) -> Plan:
    """The plan of shape ``kind`` from the parsed options."""
    if kind == "step":
        return StepPlan(
            step_users=options.step_users,
            step_seconds=parse_duration(options.step_time),
            steps=options.steps,
            spawn_rate=options.shape_spawn_rate,
        )
    if kind == "spike":
        return SpikePlan(
            baseline_users=options.baseline_users,
            spike_users=options.spike_users,
            before_seconds=parse_duration(options.spike_before),
            spike_seconds=parse_duration(options.spike_time),
            after_seconds=parse_duration(options.spike_after),
            spawn_rate=options.shape_spawn_rate,
            # A spike arrives at once: every extra user within about a second.
            spike_spawn_rate=float(options.spike_users - options.baseline_users),
        )
    if kind == "soak":
        return SoakPlan(
            users=options.soak_users,
            ramp_seconds=parse_duration(options.soak_ramp),
            hold_seconds=parse_duration(options.soak_time),
        )
    raise ValueError(f"LOADTEST_SHAPE must be step, spike or soak, not {kind!r}")


class PlannedShape(LoadTestShape):
    """A Locust shape that follows one of the plans in ``loadtests.shapes``."""

    abstract: ClassVar[bool] = True
    kind: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self._plan: Plan | None = None
        self._last_users: int | None = None
        self._progress = PhaseProgress()

    def tick(self) -> tuple[int, float] | None:
        if self._plan is None:
            options = self.runner.environment.parsed_options if self.runner else None
            if options is None:
                raise RuntimeError("a load shape needs Locust's parsed options")
            self._plan = build_plan(self.kind, options)
            TIMELINE.plan = {"kind": self.kind, **vars(self._plan)}
        target = self._plan.tick(self.get_run_time())
        users = None if target is None else target[0]
        if users != self._last_users:
            TIMELINE.targets.append((time.time(), users))
            self._last_users = users
            self._say_progress(users)
        return target

    def _say_progress(self, users: int | None) -> None:
        total = self.runner.stats.total if self.runner else None
        if total is None:
            return
        p95 = total.get_current_response_time_percentile(0.95) if total.num_requests else None
        line = self._progress.change(
            now=time.monotonic(),
            users=users,
            requests=total.num_requests,
            failures=total.num_failures,
            p95_ms=p95,
        )
        if line:
            # stderr, flushed: the capacity command's terminal sees it as the phase ends.
            print(line, file=sys.stderr, flush=True)


class StepShape(PlannedShape):
    kind = "step"


class SpikeShape(PlannedShape):
    kind = "spike"


class SoakShape(PlannedShape):
    kind = "soak"


SHAPES: dict[str, type[PlannedShape]] = {"step": StepShape, "spike": SpikeShape, "soak": SoakShape}


def selected_shape() -> type[PlannedShape] | None:
    """The shape named by LOADTEST_SHAPE (read at import: Locust picks shapes before options)."""
    kind = os.environ.get("LOADTEST_SHAPE", "").strip().lower()
    if not kind or kind == "none":
        return None
    if kind not in SHAPES:
        raise SystemExit(f"LOADTEST_SHAPE must be step, spike or soak, not {kind!r}")
    return SHAPES[kind]
