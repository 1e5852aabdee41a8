"""Alertmanager's config (deploy/observability/alertmanager/) is valid and routes by severity.

amtool (Debian's prometheus-alertmanager) checks the file and answers which receiver an
alert with given labels reaches; every alert of the Prometheus rules must reach one, with
critical ones paging. Prometheus sends to the Alertmanager that compose runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
CONFIG = OBS / "alertmanager" / "alertmanager.yml"
PROMETHEUS_CONFIG = OBS / "prometheus" / "prometheus.yml"
RULES = OBS / "prometheus" / "rules" / "chassis.yml"
RECEIVER_OF = {"critical": "page", "warning": "ticket", "info": "ticket"}

AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (apt-get install prometheus-alertmanager)"
)


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL is not None
    return subprocess.run(
        [AMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return config


@needs_amtool
def test_config_is_valid() -> None:
    result = _amtool("check-config", str(CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_amtool
@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_every_alert_reaches_the_receiver_of_its_severity(alert: dict[str, Any]) -> None:
    severity = alert["labels"]["severity"]
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG.relative_to(ROOT)}",
        f"--verify.receivers={RECEIVER_OF[severity]}",
        f"alertname={alert['alert']}",
        f"severity={severity}",
        "service=gateway",
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_an_alert_without_severity_still_reaches_someone() -> None:
    result = _amtool(
        "config", "routes", "test", f"--config.file={CONFIG.relative_to(ROOT)}",
        "--verify.receivers=ticket", "alertname=Unlabelled",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_notifications_are_grouped_by_alert_and_service() -> None:
    route = _config()["route"]
    assert route["group_by"] == ["alertname", "service"]
    assert {r["receiver"] for r in route["routes"]} == set(RECEIVER_OF.values())
    assert {r["name"] for r in _config()["receivers"]} == set(RECEIVER_OF.values())


def test_inhibition_names_real_alerts_and_stays_within_one_slo() -> None:
    names = {alert["alert"] for alert in _alerts()}
    for rule in _config()["inhibit_rules"]:
        # Without `equal`, one firing source would silence every target everywhere.
        assert rule["equal"], rule
        for side in ("source_matchers", "target_matchers"):
            (matcher,) = rule[side]
            pattern = re.fullmatch(r'alertname=~"(.+)"', matcher)
            assert pattern, matcher
            matched = {name for name in names if re.fullmatch(pattern.group(1), name)}
            assert len(matched) == 2, f"{matcher} matches {sorted(matched)}"


def test_prometheus_sends_alerts_to_the_compose_alertmanager() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    targets = [t for sc in alertmanagers["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    scraped = {job["job_name"] for job in config["scrape_configs"]}
    assert "alertmanager" in scraped, "TargetDown covers Alertmanager only if it is scraped"
