"""Every Grafana dashboard is well formed and every query in it is PromQL that works.

The JSON is checked against the subset of Grafana's dashboard model the provisioner
and the panels rely on; each panel target and query variable, with Grafana's variables
substituted, becomes a recording rule that promtool parses; the recording rules the
queries name are defined; the home dashboard shows each SLO's budget and burn rates.
(tests/e2e/test_dashboard_metrics.py compares the metric names with a live scrape.)
"""

from __future__ import annotations

import shutil
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.support.dashboards import (
    DASHBOARD_FILES,
    Query,
    concrete,
    load,
    metric_names,
    panels,
    queries,
    recorded_names,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)
GRID_COLUMNS = 24

_DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"type": "string"}, "uid": {"type": "string", "minLength": 1}},
}
_TARGET = {
    "type": "object",
    "required": ["refId", "datasource", "expr"],
    "properties": {
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "datasource": _DATASOURCE,
        "expr": {"type": "string", "minLength": 1},
        "legendFormat": {"type": "string"},
    },
}
_PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"enum": ["timeseries", "stat", "gauge", "bargauge", "table", "heatmap"]},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "gridPos": {
            "type": "object",
            "required": ["x", "y", "w", "h"],
            "properties": {
                "x": {"type": "integer", "minimum": 0, "maximum": GRID_COLUMNS - 1},
                "y": {"type": "integer", "minimum": 0},
                "w": {"type": "integer", "minimum": 1, "maximum": GRID_COLUMNS},
                "h": {"type": "integer", "minimum": 1},
            },
        },
        "datasource": _DATASOURCE,
        "targets": {"type": "array", "minItems": 1, "items": _TARGET},
        "fieldConfig": {"type": "object", "required": ["defaults"]},
    },
}
_VARIABLE = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string", "pattern": r"^\w+$"},
        "type": {"enum": ["datasource", "query", "custom", "interval", "constant"]},
    },
}
_LINK = {
    "type": "object",
    "required": ["title", "type"],
    "properties": {"type": {"enum": ["link", "dashboards"]}, "url": {"type": "string"}},
}
DASHBOARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "time", "templating", "panels"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "editable": {"const": False},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": _VARIABLE}},
        },
        "links": {"type": "array", "items": _LINK},
        "panels": {"type": "array", "minItems": 1, "items": _PANEL},
    },
}


def _all_queries() -> list[Query]:
    return [query for path in DASHBOARD_FILES for query in queries(path)]


def test_the_dashboard_schema_is_itself_valid() -> None:
    Draft202012Validator.check_schema(DASHBOARD_SCHEMA)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_matches_the_schema(path: Path) -> None:
    errors = sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in Draft202012Validator(DASHBOARD_SCHEMA).iter_errors(load(path))
    )
    assert errors == []


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_panels_have_unique_ids_and_ref_ids_and_do_not_overlap(path: Path) -> None:
    found = panels(load(path))
    ids = [panel["id"] for panel in found]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {ids}"
    taken: dict[tuple[int, int], str] = {}
    for panel in found:
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']}: duplicate refIds"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"{panel['title']} is wider than the grid"
        cells = product(
            range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        )
        for cell in cells:
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


def test_grafana_variables_are_substituted_in_matchers_and_ranges() -> None:
    expr = (
        'sum(rate(x_total{service=~"$service", route=~"${route}"}[$__rate_interval]))'
        ' / sum(increase(y_total{a="[[a]]"}[${__range}]))'
    )
    assert concrete(expr) == (
        'sum(rate(x_total{service=~".*", route=~".*"}[5m])) / sum(increase(y_total{a=".*"}[5m]))'
    )
    # A variable outside a string is left for promtool to refuse.
    assert concrete("x > $threshold") == "x > $threshold"


@needs_promtool
def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    checked = _all_queries()
    assert checked
    rules = [
        {"record": f"dashboard:query:{index}", "expr": query.concrete}
        for index, query in enumerate(checked)
    ]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    where = "\n".join(f"{i}: {q.dashboard} {q.where}: {q.concrete}" for i, q in enumerate(checked))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{where}"
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@needs_promtool
def test_promtool_refuses_a_query_with_a_variable_left_in(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules_file = tmp_path / "bad.yml"
    rule = {"record": "dashboard:query:0", "expr": concrete("up > $threshold")}
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [rule]}]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_recording_rules_the_dashboards_use_are_defined() -> None:
    recorded = recorded_names()
    for query in _all_queries():
        missing = {name for name in metric_names(query.expr) if ":" in name} - recorded
        assert not missing, f"{query.dashboard} {query.where}: no recording rule {sorted(missing)}"


def test_request_latency_tails_show_their_exemplars() -> None:
    """The p95/p99 request-latency panels ask for exemplars: a click on one opens its trace."""
    tails = [
        target
        for path in DASHBOARD_FILES
        for panel in panels(load(path))
        for target in panel.get("targets", [])
        if "http_request_duration_seconds_bucket" in target.get("expr", "")
        and target["expr"].startswith(("histogram_quantile(0.95", "histogram_quantile(0.99"))
    ]
    assert tails
    assert all(target.get("exemplar") is True for target in tails)


HOME = next((path for path in DASHBOARD_FILES if path.name == "home.json"), None)


def _slos() -> set[str]:
    rules_dir = DASHBOARD_FILES[0].parents[2] / "prometheus" / "rules"
    return {
        rule["labels"]["slo"]
        for path in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if rule.get("record") == "slo:objective:ratio"
    }


def test_the_home_dashboard_shows_every_slo_with_its_budget_and_burn_rates() -> None:
    assert HOME is not None, "no home dashboard (home.json)"
    slos = _slos()
    assert slos
    exprs = [" ".join(query.expr.split()) for query in queries(HOME)]
    for slo in slos:
        selector = f'{{slo="{slo}"}}'
        mine = [expr for expr in exprs if selector in expr]
        for shown in (
            "slo:objective:ratio",
            "slo:sli_error:ratio_rate30d",
            "slo:error_budget_remaining:ratio",
        ):
            assert any(shown + selector in expr for expr in mine), f"{slo}: no {shown} panel"
        # A burn rate for every long window the alerts compare (and the shortest one).
        burns = {
            window
            for window in ("5m", "1h", "6h", "1d", "3d")
            for expr in mine
            if f"slo:sli_error:ratio_rate{window}{selector} / on (slo, service) (1 - "
            f"slo:objective:ratio{selector})" in expr
        }
        assert burns == {"5m", "1h", "6h", "1d", "3d"}, f"{slo}: burn rates shown {burns}"
