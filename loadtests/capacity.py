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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.endpoints import GROUPS
from loadtests.histogram import Histogram, merge, percentile
from loadtests.run import GRACE_SECONDS, ROOT, SUITES, RunRequest, report_dir, run
from loadtests.shapes import StepPlan, parse_duration
from loadtests.slo import (
    Breach,
    GroupResult,
    Objective,
    evaluate,
    ordered,
    parse_objectives,
)

TIMELINE_FILE = "timeline.json"


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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def summary_markdown(
    steps: Sequence[StepResult],
    *,
    host: str,
    plan: StepPlan,
    settle_seconds: float,
    objectives: Mapping[str, Objective],
) -> str:
    best = capacity(steps)
    lines = ["# Capacity report", ""]
    lines.append(
        f"Target `{host}`: {plan.steps} steps of {plan.step_seconds:g} s, "
        f"+{plan.step_users} users each (spawn rate {plan.spawn_rate:g}/s); the first "
        f"{settle_seconds:.3g} s of each step (users arriving, signing up) are not judged: "
        "their failures are shown as ramp failures."
    )
    lines.append("")
    if best is None:
        lines.append("**Capacity: no step met every SLO**, not even the first.")
    else:
        lines.append(
            f"**Capacity: step {best.index + 1}, {best.users} users, "
            f"{best.throughput:,.1f} requests/s** with every SLO met."
        )
        after = steps[best.index + 1] if best.index + 1 < len(steps) else None
        if after is not None:
            missed = ", ".join(sorted({f"{b.group} {b.metric}" for b in after.breaches}))
            lines.append(
                f"Step {after.index + 1} ({after.users} users) broke: {missed or 'no traffic'}."
            )
        else:
            lines.append("Every step held: the knee is above the last step; run more steps.")
    lines += [
        "",
        "| step | users | requests/s | errors | worst p95 ms | worst p99 ms | SLO | ramp fails |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for step in steps:
        verdict = "ok" if step.holds else "breach" if step.breaches else "no traffic"
        lines.append(
            f"| {step.index + 1} | {step.users} | {step.throughput:,.1f} | "
            f"{step.error_rate:.2%} | {_ms(step.worst('p95_ms'))} | "
            f"{_ms(step.worst('p99_ms'))} | {verdict} | "
            f"{step.ramp_failures} of {step.ramp_requests} |"
        )
    lines += ["", "Per group (p95 / p99 ms, errors; `*` marks a breach):", ""]
    lines.append("| step | " + " | ".join(GROUPS) + " |")
    lines.append("|---:|" + "---|" * len(GROUPS))
    for step in steps:
        breached = {breach.group for breach in step.breaches}
        cells = []
        for group in ordered(step.groups):
            if not group.requests:
                cells.append("-")
                continue
            mark = " *" if group.group in breached else ""
            cells.append(f"{_ms(group.p95_ms)} / {_ms(group.p99_ms)}, {group.error_rate:.1%}{mark}")
        lines.append(f"| {step.index + 1} | " + " | ".join(cells) + " |")
    lines += ["", "SLOs (error rate, p95, p99):", ""]
    for name, objective in objectives.items():
        lines.append(
            f"- {name}: ≤ {objective.error_rate:.2%}, p95 ≤ {objective.p95_ms:,.0f} ms, "
            f"p99 ≤ {objective.p99_ms:,.0f} ms"
        )
    return "\n".join(lines) + "\n"


def plot(steps: Sequence[StepResult], path: Path, *, title: str) -> None:
    """Throughput, worst p95/p99 and error rate per step, capacity marked: a PNG."""
    # The object API without pyplot: no GUI backend or global state, and a lighter import.
    from matplotlib.figure import Figure

    users = [step.users for step in steps]
    figure = Figure(figsize=(8, 9))
    top, middle, bottom = figure.subplots(3, 1, sharex=True)
    top.plot(users, [step.throughput for step in steps], marker="o")
    top.set_ylabel("requests/s")
    top.set_title(title)
    for metric, label in (("p95_ms", "p95 (worst group)"), ("p99_ms", "p99 (worst group)")):
        values = [step.worst(metric) for step in steps]
        middle.plot(
            users, [v if v is not None else float("nan") for v in values], marker="o", label=label
        )
    middle.set_ylabel("ms")
    middle.legend()
    bottom.plot(users, [100 * step.error_rate for step in steps], marker="o", color="tab:red")
    bottom.set_ylabel("errors %")
    bottom.set_ylim(bottom=0)
    broken = [step for step in steps if not step.holds]
    if broken:
        top.scatter(
            [step.users for step in broken],
            [step.throughput for step in broken],
            marker="x",
            color="tab:red",
            zorder=3,
            label="SLO breached",
        )
        top.legend()
    bottom.set_xlabel("users")
    best = capacity(steps)
    for axes in (top, middle, bottom):
        axes.grid(alpha=0.3)
        if best is not None:
            axes.axvline(best.users, color="tab:green", linestyle="--")
    if best is not None:
        top.annotate(
            f"capacity: {best.users} users",
            (best.users, best.throughput),
            textcoords="offset points",
            xytext=(5, -15),
            color="tab:green",
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)


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
