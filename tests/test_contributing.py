"""CONTRIBUTING.md's "Add a service" walk-through names files and names that really exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "CONTRIBUTING.md").read_text()
#: The walk-through shows each `<name>` path for the service a new one is copied from.
TEMPLATE_SERVICE = "orders"
TOP_LEVEL_FILES = {
    "Dockerfile",
    "Tiltfile",
    "Makefile",
    "docker-compose.yml",
    "uv.lock",
    "pyproject.toml",
    "README.md",
}
#: Names the walk-through tells a newcomer to edit, and the file that must define them.
NAMES_IN_FILES = {
    "SettingsGetter": "libs/chassis/src/chassis/settings.py",
    "app_settings_dependency": "libs/chassis/src/chassis/settings.py",
    "ServiceBase": "libs/chassis/src/chassis/database/metadata.py",
    "PORT_OFFSETS": "libs/devkit/src/devkit/commands.py",
    "FACTORIES": "libs/devkit/src/devkit/commands.py",
    "START_ORDER": "libs/devkit/src/devkit/commands.py",
    "MIGRATED": "Tiltfile",
    "SERVICE_SETTINGS": "Makefile",
    "chassis.services": "deploy/helm/chassis/templates/_helpers.tpl",
    "*app-security": "docker-compose.yml",
    "*app-resources": "docker-compose.yml",
}


def _section(title: str) -> str:
    start = GUIDE.index(f"## {title}\n")
    end = GUIDE.find("\n## ", start + 1)
    return GUIDE[start : end if end != -1 else len(GUIDE)]


def _backticked_paths(text: str) -> list[str]:
    paths = []
    for span in re.findall(r"`([^`\n]+)`", text):
        if " " in span or span.startswith(("/", "-")):
            continue  # a command, a URL path or an option, not a file
        if "/" in span or span in TOP_LEVEL_FILES:
            paths.append(span)
    return paths


def test_the_add_a_service_section_covers_every_step() -> None:
    section = _section("Add a service")
    for topic in (
        "The package",
        "The builder steps",
        "The settings prefix",
        "The migrations",
        "The compose entry",
        "The chart section",
        "The Tiltfile resource",
        "The dashboards",
    ):
        assert f"### {topic}" in section or re.search(rf"### \d+\. {topic}", section), topic


@pytest.mark.parametrize("path", sorted(set(_backticked_paths(GUIDE))))
def test_every_path_in_the_guide_exists(path: str) -> None:
    concrete = path.replace("<name>", TEMPLATE_SERVICE)
    assert (ROOT / concrete).exists(), f"CONTRIBUTING.md names `{path}`: {concrete} is missing"


@pytest.mark.parametrize(("name", "where"), sorted(NAMES_IN_FILES.items()))
def test_every_name_the_guide_says_to_edit_is_where_it_says(name: str, where: str) -> None:
    spans = re.findall(r"`([^`\n]+)`", GUIDE)
    assert any(re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", span) for span in spans), (
        f"{name} is no longer in CONTRIBUTING.md: drop it here"
    )
    assert name.lstrip("*") in (ROOT / where).read_text(), f"{name} is not in {where}"


def test_the_path_filter_sees_the_guide_paths() -> None:
    # The parametrised test above would pass vacuously if the filter matched nothing.
    paths = _backticked_paths(_section("Add a service"))
    assert "services/<name>/src/<name>/main.py" in paths
    assert "docker-compose.yml" in paths
    assert len(paths) >= 25
