"""The capacity report's two views of the analysed steps: summary.md and capacity.png."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from loadtests.capacity_analysis import StepResult, capacity
from loadtests.endpoints import GROUPS
from loadtests.shapes import StepPlan
from loadtests.slo import Objective, ordered


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
