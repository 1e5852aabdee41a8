"""Capacity report: run the step shape against a target and find the highest step within SLO.

    python -m loadtests.capacity --host http://127.0.0.1:8000 --step-users 10 --step-time 30s

Locust runs the step shape (``step-users`` more users every ``step-time``) and writes a
timeline: per second and per endpoint group, requests, failures and a response-time
histogram. Each step is cut out of it, its first ``settle`` seconds dropped (users are
still arriving, signing up and logging in), and the rest measured: throughput, error
rate, p95 and p99 per group. The capacity is the last step of the unbroken run of
steps from the first at which every group meets its SLO. ``summary.md`` and
``capacity.png`` land in ``reports/capacity-<UTC timestamp>/`` with Locust's own CSV
and HTML; ``--analyse DIR`` redoes the report from a directory's timeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from loadtests.capacity_analysis import (
    Second,
    StepResult,
    Timeline,
    analyse,
    capacity,
    load_timeline,
    measure,
)
from loadtests.capacity_report import plot, summary_markdown
from loadtests.run import GRACE_SECONDS, ROOT, SUITES, RunRequest, report_dir, run
from loadtests.shapes import StepPlan, parse_duration
from loadtests.slo import Objective, parse_objectives

__all__ = [
    "TIMELINE_FILE",
    "Second",
    "StepResult",
    "Timeline",
    "analyse",
    "capacity",
    "load_timeline",
    "main",
    "measure",
    "parse_args",
    "plot",
    "report",
    "settle_for",
    "summary_markdown",
]

TIMELINE_FILE = "timeline.json"


def report(
    directory: Path, *, objectives: Mapping[str, Objective], settle_seconds: float
) -> StepResult | None:
    """Analyse ``directory``'s timeline; write summary.md and capacity.png next to it."""
    data = json.loads((directory / TIMELINE_FILE).read_text())
    plan_data = data["plan"]
    if plan_data.get("kind") != "step" or data.get("started_at") is None:
        raise ValueError(f"{directory / TIMELINE_FILE} is not the timeline of a step run")
    plan = StepPlan(
        step_users=int(plan_data["step_users"]),
        step_seconds=float(plan_data["step_seconds"]),
        steps=int(plan_data["steps"]),
        spawn_rate=float(plan_data["spawn_rate"]),
    )
    # The shape's first target is when its clock started; test_start is a moment earlier.
    targets = data.get("targets") or [[data["started_at"], None]]
    steps = analyse(
        load_timeline(data),
        plan=plan,
        started_at=float(targets[0][0]),
        settle_seconds=settle_seconds,
        objectives=objectives,
    )
    host = data.get("host", "")
    summary = summary_markdown(
        steps, host=host, plan=plan, settle_seconds=settle_seconds, objectives=objectives
    )
    (directory / "summary.md").write_text(summary)
    plot(steps, directory / "capacity.png", title=f"Capacity per step {host}".strip())
    print(summary)
    return capacity(steps)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.capacity",
        description="Step load against a target; the highest step within every SLO. "
        "Arguments after -- go to Locust (e.g. --accounts, --client-ips).",
    )
    parser.add_argument("--host", help="Base URL of the target (the gateway).")
    parser.add_argument("--suite", choices=sorted(SUITES), default="journey")
    parser.add_argument("--step-users", type=int, default=10, help="Users added per step (10).")
    parser.add_argument("--step-time", default="30s", help="Length of a step (30s).")
    parser.add_argument("--steps", type=int, default=6, help="Number of steps (6).")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="Users started per second.")
    parser.add_argument(
        "--settle",
        default="",
        help="Unmeasured start of each step (default: a third of a step, at least 5 s).",
    )
    parser.add_argument("--slo", default="", help="SLO overrides, as for the suites' --slo.")
    parser.add_argument("--processes", type=int, default=0, help="Locust worker processes.")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--analyse", type=Path, help="Only redo the report of this directory.")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    args = parser.parse_args(argv)
    if args.analyse is None and not args.host:
        parser.error("--host is required (or --analyse DIR)")
    args.locust_args = extra
    return args


def settle_for(step_seconds: float, settle: str) -> float:
    if settle:
        return parse_duration(settle)
    return min(max(step_seconds / 3, 5.0), step_seconds / 2)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    objectives = parse_objectives(args.slo)
    step_seconds = parse_duration(args.step_time)
    settle = settle_for(step_seconds, args.settle)
    if args.analyse is not None:
        report(args.analyse, objectives=objectives, settle_seconds=settle)
        return 0
    plan = StepPlan(
        step_users=args.step_users,
        step_seconds=step_seconds,
        steps=args.steps,
        spawn_rate=args.spawn_rate,
    )
    directory = report_dir(args.reports, "capacity")
    request = RunRequest(
        host=args.host.rstrip("/"),
        reports=directory,
        suite=args.suite,
        shape="step",
        processes=args.processes,
        # Steps are judged one by one here; the whole-run gate would only repeat the last.
        extra=[
            *args.locust_args,
            "--slo",
            "off",
            "--timeline-file",
            str(directory / TIMELINE_FILE),
        ],
        env={
            "LOADTEST_STEP_USERS": str(plan.step_users),
            "LOADTEST_STEP_TIME": f"{plan.step_seconds:g}s",
            "LOADTEST_STEPS": str(plan.steps),
            "LOADTEST_SHAPE_SPAWN_RATE": f"{plan.spawn_rate:g}",
        },
    )
    code = run(request, timeout=plan.duration + GRACE_SECONDS)
    timeline_path = directory / TIMELINE_FILE
    if not timeline_path.is_file():
        print(f"== no timeline in {directory}: locust exited {code}", file=sys.stderr)
        return code or 1
    data = json.loads(timeline_path.read_text())
    data["host"] = request.host
    timeline_path.write_text(json.dumps(data))
    report(directory, objectives=objectives, settle_seconds=settle)
    print(f"== capacity report: {directory / 'summary.md'}, {directory / 'capacity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
