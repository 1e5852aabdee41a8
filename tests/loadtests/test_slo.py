"""The SLO gate's decisions on synthetic group results (no Locust in this process)."""

from __future__ import annotations

import pytest

from loadtests.slo import (
    DEFAULT_OBJECTIVES,
    Breach,
    GroupResult,
    Objective,
    evaluate,
    parse_objectives,
    render_table,
)

OBJECTIVES = {
    "auth": Objective(error_rate=0.01, p95_ms=2000, p99_ms=4000),
    "orders-read": Objective(error_rate=0.01, p95_ms=300, p99_ms=600),
}


def result(
    group: str, *, requests: int = 1000, failures: int = 0, p95: float = 100, p99: float = 200
) -> GroupResult:
    return GroupResult(group=group, requests=requests, failures=failures, p95_ms=p95, p99_ms=p99)


def test_a_run_within_every_objective_has_no_breach() -> None:
    assert evaluate([result("auth", p95=1999, p99=3999), result("orders-read")], OBJECTIVES) == []


def test_a_value_equal_to_its_bound_holds() -> None:
    assert evaluate([result("orders-read", failures=10, p95=300, p99=600)], OBJECTIVES) == []


def test_each_missed_objective_is_its_own_breach() -> None:
    breaches = evaluate(
        [result("orders-read", failures=11, p95=301, p99=601), result("auth")], OBJECTIVES
    )
    assert breaches == [
        Breach("orders-read", "error_rate", 0.011, 0.01),
        Breach("orders-read", "p95_ms", 301, 300),
        Breach("orders-read", "p99_ms", 601, 600),
    ]


def test_a_tail_breach_alone_fails_the_run() -> None:
    breaches = evaluate([result("orders-read", p95=250, p99=900)], OBJECTIVES)
    assert [(b.group, b.metric) for b in breaches] == [("orders-read", "p99_ms")]


def test_a_group_without_requests_cannot_breach() -> None:
    idle = GroupResult(group="auth", requests=0, failures=0, p95_ms=None, p99_ms=None)
    assert evaluate([idle], OBJECTIVES) == []


def test_a_group_without_an_objective_is_not_judged() -> None:
    assert evaluate([result("metrics", failures=1000, p95=1e6, p99=1e6)], OBJECTIVES) == []


def test_every_failure_counts_when_all_requests_fail() -> None:
    breaches = evaluate([result("auth", requests=3, failures=3)], OBJECTIVES)
    assert breaches == [Breach("auth", "error_rate", 1.0, 0.01)]


def test_defaults_cover_every_endpoint_group() -> None:
    from loadtests.endpoints import GROUPS

    assert set(DEFAULT_OBJECTIVES) == set(GROUPS)


def test_an_override_changes_one_value_of_one_group() -> None:
    objectives = parse_objectives("orders-read.p95_ms=250", OBJECTIVES)
    assert objectives["orders-read"] == Objective(error_rate=0.01, p95_ms=250, p99_ms=600)
    assert objectives["auth"] == OBJECTIVES["auth"]


def test_a_wildcard_override_applies_to_every_group() -> None:
    objectives = parse_objectives(" *.error_rate=0.05 , auth.p99_ms=5000 ", OBJECTIVES)
    assert {o.error_rate for o in objectives.values()} == {0.05}
    assert objectives["auth"].p99_ms == 5000


def test_an_empty_spec_keeps_the_defaults() -> None:
    assert parse_objectives("") == DEFAULT_OBJECTIVES


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("orders-read", "not group.field=value"),
        ("orders-read.p95=3", "SLO field"),
        ("billing.p95_ms=3", "SLO group"),
        ("auth.p95_ms=fast", "not a number"),
        ("auth.p95_ms=-1", "non-negative"),
        ("auth.p95_ms=nan", "non-negative"),
    ],
)
def test_a_malformed_override_is_refused_with_its_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_objectives(spec, OBJECTIVES)


def test_the_table_shows_each_group_with_its_verdict() -> None:
    results = [
        result("orders-read", failures=50, p95=900),
        GroupResult(group="auth", requests=0, failures=0, p95_ms=None, p99_ms=None),
    ]
    table = render_table(results, OBJECTIVES, evaluate(results, OBJECTIVES))
    lines = table.splitlines()
    # Report order (auth before orders-read), whatever order the results came in.
    assert lines[2].startswith("| auth | 0 |")
    assert lines[2].endswith("| no requests |")
    assert "5.00% (max 1.00%)" in lines[3]
    assert "900 (max 300)" in lines[3]
    assert lines[3].endswith("| BREACH: error_rate, p95_ms |")
