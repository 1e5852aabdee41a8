"""The observability stack under deploy/observability/ is consistent with the code.

promtool validates the Prometheus config and rules and runs the rule unit tests;
the collector pipelines only name components that are defined; every dashboard
panel queries a provisioned datasource; and every metric name used in a dashboard
or a rule is one the chassis actually exports (or a Prometheus builtin).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from chassis.metrics import registry
from tests.support.dashboards import (
    DASHBOARD_FILES,
    PROMETHEUS_BUILTINS,
    load,
    metric_names,
    panels,
    queries,
    recorded_names,
)

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
PROMETHEUS_CONFIG = OBS / "prometheus" / "prometheus.yml"
RULES_DIR = OBS / "prometheus" / "rules"
RULE_TESTS_DIR = OBS / "prometheus" / "tests"
RULE_TESTS = sorted(RULE_TESTS_DIR.glob("*_test.yml"))
COLLECTOR_CONFIG = OBS / "otel-collector.yaml"
GRAFANA = OBS / "grafana"
DATASOURCES_DIR = GRAFANA / "provisioning" / "datasources"
DASHBOARD_PROVIDERS_DIR = GRAFANA / "provisioning" / "dashboards"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _exported_metric_names() -> set[str]:
    """Every series name the chassis registry exposes, with the type's suffixes."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for value in vars(registry).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


EXPORTED = _exported_metric_names()


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, load(path)) for path in DASHBOARD_FILES]


def _datasources() -> dict[str, str]:
    """Provisioned datasources: uid -> type."""
    return {
        ds["uid"]: ds["type"]
        for path in sorted(DATASOURCES_DIR.glob("*.yml"))
        for ds in _load_yaml(path)["datasources"]
    }


def _ds_refs_in(node: Any) -> list[dict[str, Any]]:
    """Every datasource reference (panel, target, variable) anywhere in a dashboard."""
    refs: list[dict[str, Any]] = []
    if isinstance(node, dict):
        ds = node.get("datasource")
        if ds is not None:
            refs.append(ds if isinstance(ds, dict) else {"uid": ds})
        for value in node.values():
            refs += _ds_refs_in(value)
    elif isinstance(node, list):
        for value in node:
            refs += _ds_refs_in(value)
    return refs


# --- the extractor itself -------------------------------------------------------


def test_metric_name_extraction_skips_functions_labels_and_grouping() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket"
        '{service=~"$service", route!="/x"}[$__rate_interval] offset 5m))) > 1 and on (service) '
        "up == 0 or service:http_requests:rate5m"
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "up",
        "service:http_requests:rate5m",
    }


def test_registry_names_include_type_suffixes() -> None:
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "queue_depth",
    } <= EXPORTED
    assert "http_requests" not in EXPORTED


# --- Prometheus -------------------------------------------------------------------


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_are_valid() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    result = _promtool("check", "rules", *(str(p.relative_to(ROOT)) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    result = _promtool("test", "rules", str(path.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_covers_every_service() -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["users"] == ["users:8001"]
    assert targets["orders"] == ["orders:8002"]
    assert targets["gateway"] == ["gateway:8000"]
    assert targets["worker"] == ["worker:8003"]
    assert targets["otel-collector"] == ["otel-collector:8889"]
    assert "prometheus" in targets


def test_every_alert_has_severity_annotations_duration_and_a_unit_test() -> None:
    alerts = [rule for rule in _rules() if "alert" in rule]
    expected = {
        "HighErrorRate",
        "HighLatencyP99",
        "DbPoolExhausted",
        "CircuitBreakerOpen",
        "QueueBacklog",
        "OutboxLag",
        "TargetDown",
        *SLO_ALERTS,
    }
    assert expected <= {a["alert"] for a in alerts}
    tested: dict[str, list[list[Any]]] = {}
    cases = [case for path in RULE_TESTS for case in _load_yaml(path)["tests"]]
    for case in cases:
        for check in case.get("alert_rule_test", []):
            tested.setdefault(check["alertname"], []).append(check.get("exp_alerts") or [])
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description"} <= set(alert["annotations"]), name
        assert alert.get("for"), f"{name} has no `for:` duration"
        outcomes = tested.get(name, [])
        assert any(outcomes), f"{name}: no unit test where it fires"
        assert not all(outcomes), f"{name}: no unit test where it stays silent"


SLO_ALERTS = {
    "GatewayAvailabilityFastBurn",
    "GatewayAvailabilitySlowBurn",
    "GatewayLatencyFastBurn",
    "GatewayLatencySlowBurn",
}
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
SLOS = {"gateway-availability": 0.995, "gateway-latency": 0.99}
# The SRE workbook's pairs: (burn rate, long window, short window) per severity.
BURN_RATES = {
    "critical": {("14.4", "1h", "5m"), ("6", "6h", "30m")},
    "warning": {("3", "1d", "2h"), ("1", "3d", "6h")},
}


def test_every_slo_is_recorded_for_every_window_with_its_objective() -> None:
    rules = [rule for rule in _rules() if "record" in rule]
    by_slo: dict[str, set[str]] = {}
    for rule in rules:
        if rule["record"].startswith("slo:sli_error:ratio_rate"):
            window = rule["record"].removeprefix("slo:sli_error:ratio_rate")
            by_slo.setdefault(rule["labels"]["slo"], set()).add(window)
            assert f"[{window}]" in rule["expr"], rule["record"]
            # The SLI is the gateway's API and JWKS, never the long-lived event stream.
            assert 'route!="/api/v1/events"' in rule["expr"], rule["record"]
    assert by_slo == {slo: set(SLO_WINDOWS) for slo in SLOS}
    objectives = {
        rule["labels"]["slo"]: float(rule["expr"].removeprefix("vector(").removesuffix(")"))
        for rule in rules
        if rule["record"] == "slo:objective:ratio"
    }
    assert objectives == SLOS
    assert "slo:error_budget_remaining:ratio" in {rule["record"] for rule in rules}


def test_slo_alerts_pair_a_long_and_a_short_window_per_burn_rate() -> None:
    pair = re.compile(
        r"slo:sli_error:ratio_rate(\w+)\{slo=\"([\w-]+)\"\}\s*>\s*on \(slo, service\) "
        r"\(([\d.]+) \* \(1 - slo:objective:ratio\{slo=\"([\w-]+)\"\}\)\)"
    )
    alerts = {rule["alert"]: rule for rule in _rules() if rule.get("alert") in SLO_ALERTS}
    assert set(alerts) == SLO_ALERTS
    for name, alert in alerts.items():
        found = pair.findall(" ".join(alert["expr"].split()))
        slos = {slo for _, slo, _, objective in found} | {o for *_, o in found}
        assert slos == {"gateway-availability" if "Availability" in name else "gateway-latency"}
        # Conditions come as (long and short) with the same factor, in that order.
        conditions = [(factor, window) for window, _, factor, _ in found]
        pairs = {(a[0], a[1], b[1]) for a, b in zip(conditions[::2], conditions[1::2], strict=True)}
        assert all(a[0] == b[0] for a, b in zip(conditions[::2], conditions[1::2], strict=True))
        assert pairs == BURN_RATES[alert["labels"]["severity"]], name


def test_alerts_read_recorded_series_instead_of_repeating_them() -> None:
    """One definition per quantity: an alert compares a recording with its threshold."""
    rules = _rules()
    recorded = {" ".join(r["expr"].split()) for r in rules if "record" in r}
    for alert in (r for r in rules if "alert" in r):
        expr = " ".join(alert["expr"].split())
        repeated = [body for body in recorded if body in expr]
        assert not repeated, f"{alert['alert']} repeats {repeated}: use the recorded series"
        # Rates and quantiles over raw series belong in recording rules.
        assert not re.search(r"\b(rate|histogram_quantile)\s*\(", expr), alert["alert"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_only_use_exported_metrics(path: Path) -> None:
    recorded = recorded_names()
    for group in _load_yaml(path)["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - EXPORTED - PROMETHEUS_BUILTINS - recorded
            name = rule.get("alert") or rule.get("record")
            assert not unknown, f"{path.name} {name}: nobody exports {sorted(unknown)}"


# --- OpenTelemetry Collector ------------------------------------------------------


def test_collector_pipelines_reference_defined_components() -> None:
    config = _load_yaml(COLLECTOR_CONFIG)
    service = config["service"]
    assert set(service["pipelines"]) >= {"traces", "metrics"}
    for kind in ("receivers", "processors", "exporters"):
        defined = set(config[kind])
        for name, pipeline in service["pipelines"].items():
            used = set(pipeline[kind])
            assert used, f"pipeline {name} has no {kind}"
            assert used <= defined, f"pipeline {name} uses undefined {kind} {used - defined}"
    assert set(service.get("extensions", [])) <= set(config.get("extensions", {}))
    assert "health_check" in service["extensions"]
    for pipeline in service["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter"


def test_collector_exports_traces_to_jaeger_and_metrics_to_prometheus() -> None:
    config = _load_yaml(COLLECTOR_CONFIG)
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    pipelines = config["service"]["pipelines"]
    (traces_exporter,) = pipelines["traces"]["exporters"]
    assert config["exporters"][traces_exporter]["endpoint"] == "jaeger:4317"
    assert config["exporters"][traces_exporter]["tls"]["insecure"] is True
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert config["exporters"]["prometheus"]["endpoint"].endswith(":8889")


# --- Grafana ------------------------------------------------------------------------


def test_datasources_provisioned_with_prometheus_default() -> None:
    datasources = [
        ds for p in sorted(DATASOURCES_DIR.glob("*.yml")) for ds in _load_yaml(p)["datasources"]
    ]
    by_uid = {ds["uid"]: ds for ds in datasources}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["isDefault"] is True
    assert by_uid["jaeger"]["type"] == "jaeger"
    assert [ds["uid"] for ds in datasources if ds.get("isDefault")] == ["prometheus"]


def test_dashboard_provider_is_provisioned() -> None:
    providers = [
        provider
        for p in sorted(DASHBOARD_PROVIDERS_DIR.glob("*.yml"))
        for provider in _load_yaml(p)["providers"]
    ]
    assert providers
    assert all(p["type"] == "file" and p["options"]["path"] for p in providers)


def test_expected_dashboards_exist_with_unique_uids() -> None:
    dashboards = dict(_dashboards())
    titles = {d["title"] for d in dashboards.values()}
    expected = {"RED per service and route", "Resilience", "Jobs and events", "Database"}
    assert expected | {"Home: SLOs and error budgets"} <= titles
    uids = [d["uid"] for d in dashboards.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_panels_query_provisioned_datasources(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    found = panels(dashboard)
    assert found
    ids = [p["id"] for p in found]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
    for panel in found:
        assert panel.get("targets"), f"{path.name} {panel['title']}: no targets"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{path.name} {panel['title']}: empty expr"
    # Prometheus is chosen with the dashboard's `datasource` variable, so the same JSON
    # works where the provisioned uid differs (a Grafana sidecar in a cluster).
    provisioned = _datasources()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    variable = variables.get("datasource")
    assert variable is not None, f"{path.name}: no `datasource` template variable"
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variable["query"] in provisioned.values(), "the variable's type is not provisioned"
    refs = _ds_refs_in(dashboard)
    assert refs
    for ref in refs:
        if ref.get("type") == "prometheus":
            assert ref == {"type": "prometheus", "uid": "${datasource}"}, f"{path.name}: {ref}"
        else:
            # Anything else (Jaeger links) names a provisioned datasource of its own type.
            assert ref.get("uid") in provisioned, f"{path.name}: {ref} is not provisioned"
            assert provisioned[ref["uid"]] == ref.get("type"), f"{path.name}: {ref}"
    for panel in found:
        assert panel.get("datasource"), f"{path.name} {panel['title']}: no datasource"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], f"{path.name} {panel['title']}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboards_only_query_exported_metrics(path: Path) -> None:
    known = EXPORTED | PROMETHEUS_BUILTINS | recorded_names()
    for query in queries(path):
        unknown = metric_names(query.expr) - known
        assert not unknown, f"{path.name} {query.where}: nobody exports {sorted(unknown)}"
