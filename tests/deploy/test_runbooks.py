"""Every alert links its runbook, and every runbook belongs to an alert.

An alert's `runbook_url` is the repository's docs/runbooks.md (at the chart's `home`)
with an anchor; the anchor must be one GitHub makes of a `## ` heading in that file,
and that section must give what the alert means, its first checks and the mitigation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "observability" / "prometheus" / "rules" / "chassis.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CHART = ROOT / "deploy" / "helm" / "chassis" / "Chart.yaml"
SECTION_PARTS = ("**What it means.**", "**First three checks.**", "**Mitigate.**")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, - for spaces."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _sections() -> dict[str, str]:
    """anchor -> the section's text, for each second-level heading of docs/runbooks.md."""
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    return {github_anchor(title): body for title, body in pairs}


def _base_url() -> str:
    home = yaml.safe_load(CHART.read_text(encoding="utf-8"))["home"]
    return f"{home}/blob/main/docs/runbooks.md#"


def test_anchor_follows_github() -> None:
    assert github_anchor("HighErrorRate") == "higherrorrate"
    assert github_anchor("Pool: full (Postgres)") == "pool-full-postgres"


def test_every_alert_links_an_existing_runbook_section() -> None:
    sections = _sections()
    base = _base_url()
    alerts = _alerts()
    assert alerts
    for alert in alerts:
        name = alert["alert"]
        url = alert["annotations"].get("runbook_url", "")
        assert url.startswith(base), f"{name}: runbook_url {url!r} is not under {base}"
        anchor = url.removeprefix(base)
        assert anchor == github_anchor(name), f"{name}: its runbook is titled by its name"
        assert anchor in sections, f"{name}: docs/runbooks.md has no section #{anchor}"


def test_every_runbook_section_belongs_to_an_alert_and_is_complete() -> None:
    linked = {alert["annotations"]["runbook_url"].rpartition("#")[2] for alert in _alerts()}
    sections = _sections()
    assert set(sections) - linked == set(), "runbook sections no alert links"
    for anchor, body in sections.items():
        for part in SECTION_PARTS:
            assert part in body, f"#{anchor}: no {part}"
        checks = re.findall(r"^\d\. ", body.split(SECTION_PARTS[1])[1], flags=re.MULTILINE)
        assert len(checks) >= 3, f"#{anchor}: fewer than three first checks"
