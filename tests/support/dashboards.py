"""The Grafana dashboards and the PromQL in them, read the same way by every check.

tests/deploy reads them offline (schema, promtool, the chassis registry) and tests/e2e
compares their metric names with a live scrape of the running services.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "deploy" / "observability" / "grafana" / "dashboards"
RULES_DIR = ROOT / "deploy" / "observability" / "prometheus" / "rules"
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))

# Series Prometheus produces itself for every scrape target.
PROMETHEUS_BUILTINS = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions and labels left out)."""
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def recorded_names() -> set[str]:
    """Every recording rule defined under deploy/observability/prometheus/rules."""
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard, as Grafana would send it before substitution."""

    dashboard: str
    where: str
    expr: str

    @property
    def concrete(self) -> str:
        return concrete(self.expr)


# label_values(selector, label): Grafana queries the series of the selector.
_LABEL_VALUES = re.compile(r"\s*label_values\((.*),\s*\w+\)\s*$", re.DOTALL)


def queries(path: Path) -> list[Query]:
    """Every panel target's expression and every query variable's series selector."""
    dashboard = load(path)
    found = [
        Query(path.name, f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else query or ""
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(f"{path.name} ${variable['name']}: not label_values(): {text!r}")
        found.append(Query(path.name, f"${variable['name']}", match.group(1)))
    return found


# Grafana's interval variables stand for durations; any other variable only ever appears
# in a label matcher's string, where ".*" (or a literal) keeps the expression valid.
_INTERVALS = re.compile(r"\$\{?(?:__rate_interval|__interval|__range)\b\}?")
_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+\]\]")


def concrete(expr: str) -> str:
    """The expression with Grafana's variables replaced as Grafana would at query time.

    A variable left outside a string (a typo, or one used where PromQL wants a number)
    stays in, so that promtool refuses the expression.
    """
    text = _INTERVALS.sub("5m", expr)
    return _STRING.sub(lambda match: _VARIABLE.sub(".*", match.group(0)), text)
