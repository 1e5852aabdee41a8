"""Service-level objectives per endpoint group and the gate that checks a run against them.

An objective bounds a group's error rate, p95 and p99. Defaults are below; a spec
such as ``"orders-read.p95_ms=300,*.error_rate=0.02"`` (``--slo`` / ``LOADTEST_SLO``)
overrides single values, ``*`` meaning every group. A group with no requests in the
run is reported but cannot breach: a suite that does not exercise it makes no claim.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loadtests.endpoints import AUTH, EVENTS, GROUPS, ORDERS_READ, ORDERS_WRITE, PROFILE


@dataclass(frozen=True)
class Objective:
    """Bounds for one group: failures / requests, and two latency percentiles in ms."""

    error_rate: float
    p95_ms: float
    p99_ms: float


#: Sized for the reference machine (2 shared cores running the whole platform and Locust):
#: sign-up and login hash with argon2 (64 MiB, 3 passes, about 0.3 s of a free core and
#: 0.8 s on a busy one) on purpose, so auth gets far more time than reads; event delivery
#: includes the outbox relay's poll. Tighten them for a real cluster with --slo.
DEFAULT_OBJECTIVES: dict[str, Objective] = {
    AUTH: Objective(error_rate=0.01, p95_ms=3000, p99_ms=6000),
    PROFILE: Objective(error_rate=0.01, p95_ms=800, p99_ms=1500),
    ORDERS_READ: Objective(error_rate=0.01, p95_ms=800, p99_ms=1500),
    ORDERS_WRITE: Objective(error_rate=0.01, p95_ms=1000, p99_ms=2000),
    EVENTS: Objective(error_rate=0.01, p95_ms=2000, p99_ms=4000),
}

_FIELDS = {field.name for field in dataclasses.fields(Objective)}


def parse_objectives(
    spec: str, base: Mapping[str, Objective] = DEFAULT_OBJECTIVES
) -> dict[str, Objective]:
    """``base`` with the overrides of ``spec`` (``group.field=value``, comma-separated)."""
    objectives = dict(base)
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        target, equals, value_text = item.partition("=")
        group, dot, field = target.strip().partition(".")
        if not equals or not dot:
            raise ValueError(f"SLO override {item!r} is not group.field=value")
        if field not in _FIELDS:
            raise ValueError(f"SLO field {field!r} is not one of {sorted(_FIELDS)}")
        groups = list(objectives) if group == "*" else [group]
        for name in groups:
            if name not in objectives:
                raise ValueError(f"SLO group {name!r} is not one of {sorted(objectives)}")
        try:
            value = float(value_text)
        except ValueError:
            raise ValueError(f"SLO value {value_text!r} of {target} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"SLO value of {target} must be a non-negative number")
        for name in groups:
            objectives[name] = dataclasses.replace(objectives[name], **{field: value})
    return objectives


@dataclass(frozen=True)
class GroupResult:
    """What a run measured for one group (percentiles None when it made no request)."""

    group: str
    requests: int
    failures: int
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Breach:
    group: str
    metric: str
    value: float
    limit: float


def evaluate(results: Iterable[GroupResult], objectives: Mapping[str, Objective]) -> list[Breach]:
    """Every objective a measured group misses; empty when the run holds its SLOs."""
    breaches: list[Breach] = []
    for result in results:
        objective = objectives.get(result.group)
        if objective is None or result.requests == 0:
            continue
        if result.error_rate > objective.error_rate:
            breaches.append(
                Breach(result.group, "error_rate", result.error_rate, objective.error_rate)
            )
        for metric, value, limit in (
            ("p95_ms", result.p95_ms, objective.p95_ms),
            ("p99_ms", result.p99_ms, objective.p99_ms),
        ):
            if value is not None and value > limit:
                breaches.append(Breach(result.group, metric, value, limit))
    return breaches


def ordered(results: Iterable[GroupResult]) -> list[GroupResult]:
    """Results in the report order of GROUPS, unknown groups last."""
    rank = {group: index for index, group in enumerate(GROUPS)}
    return sorted(results, key=lambda result: (rank.get(result.group, len(rank)), result.group))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render_table(
    results: Iterable[GroupResult],
    objectives: Mapping[str, Objective],
    breaches: Iterable[Breach],
) -> str:
    """A Markdown table: per group what was measured against its bound, and the verdict."""
    failed = {(breach.group, breach.metric) for breach in breaches}
    lines = [
        "| group | requests | errors | p95 ms | p99 ms | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for result in ordered(results):
        objective = objectives.get(result.group)
        if objective is None:
            continue
        misses = [
            metric
            for metric in ("error_rate", "p95_ms", "p99_ms")
            if (result.group, metric) in failed
        ]
        if result.requests == 0:
            verdict = "no requests"
        elif misses:
            verdict = "BREACH: " + ", ".join(misses)
        else:
            verdict = "ok"
        lines.append(
            f"| {result.group} | {result.requests:,} "
            f"| {result.error_rate:.2%} (max {objective.error_rate:.2%}) "
            f"| {_ms(result.p95_ms)} (max {objective.p95_ms:,.0f}) "
            f"| {_ms(result.p99_ms)} (max {objective.p99_ms:,.0f}) | {verdict} |"
        )
    return "\n".join(lines)
