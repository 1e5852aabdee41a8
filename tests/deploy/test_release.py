"""Release artefacts: the SBOMs, the packaged chart and the multi-platform bake file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.deploy import k8s
from tests.deploy.package_chart import CHART, package_chart

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("users", "orders", "gateway", "worker")


def _dockerfile_services() -> set[str]:
    match = re.search(
        r'case "\$\{SERVICE\}" in \\\s*\n\s*([a-z|]+)\)', (ROOT / "Dockerfile").read_text()
    )
    assert match, "the Dockerfile's SERVICE check moved: update this test"
    return set(match.group(1).split("|"))


# --- SBOM -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sboms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("sbom")
    subprocess.run(
        ["make", "--no-print-directory", "sbom", f"SBOM_DIR={directory}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {name: json.loads((directory / f"{name}.cdx.json").read_text()) for name in SERVICES}


def _components(sbom: dict[str, Any]) -> set[str]:
    return {component["name"] for component in sbom["components"]}


def test_each_service_gets_a_cyclonedx_sbom_of_what_its_image_installs(
    sboms: dict[str, dict[str, Any]],
) -> None:
    for name, sbom in sboms.items():
        assert sbom["bomFormat"] == "CycloneDX"
        assert sbom["specVersion"] == "1.5"
        assert sbom["metadata"]["component"]["name"] == name
        components = _components(sbom)
        assert {"chassis", "contracts", "fastapi", "uvicorn"} <= components, name
        # The image is `uv sync --no-dev --package <service>`: no test or load-test tooling.
        assert not {"pytest", "locust", "mypy", "ruff"} & components, name
        assert not set(SERVICES) - {name} & components, f"{name} ships another service"
        for component in sbom["components"]:
            if component.get("type") == "library" and component["name"] not in SERVICES:
                assert component.get("version"), component["name"]


def test_the_sboms_show_the_boundaries_between_services(sboms: dict[str, dict[str, Any]]) -> None:
    assert "argon2-cffi" in _components(sboms["users"])
    for name in ("orders", "gateway", "worker"):
        assert "argon2-cffi" not in _components(sboms[name]), name


# --- the chart ------------------------------------------------------------------------------


def test_the_chart_packages_with_its_metadata_and_schema(tmp_path: Path) -> None:
    archive = package_chart(tmp_path)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert archive.name == f"chassis-{chart['version']}.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        packaged = yaml.safe_load(tar.extractfile("chassis/Chart.yaml").read())  # type: ignore[union-attr]
    assert {
        "chassis/values.yaml",
        "chassis/values.schema.json",
        "chassis/templates/deployment.yaml",
    } <= names
    assert not any(name.startswith("chassis/values-") for name in names), (
        ".helmignore keeps the sets out"
    )
    for key in ("home", "sources", "kubeVersion", "appVersion", "description", "maintainers"):
        assert packaged.get(key), key
    assert packaged["sources"][0] == packaged["home"]
    minimum = packaged["annotations"]["chassis.platform/minimum-helm-version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", minimum)
    schema = json.loads((CHART / "values.schema.json").read_text())
    # Helm validates draft 2020-12 from 3.18.0 on: the annotation must not promise less.
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert tuple(int(part) for part in minimum.split(".")) >= (3, 18, 0)


def test_an_older_helm_than_the_minimum_is_refused(tmp_path: Path) -> None:
    import helm_python

    copy = tmp_path / "chassis"
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    text = chart_yaml.read_text()
    chart_yaml.write_text(
        text.replace('minimum-helm-version: "3.18.0"', 'minimum-helm-version: "99.0.0"')
    )
    with (
        helm_python.Chart.load(copy) as chart,
        pytest.raises(helm_python.HelmError, match=r"needs Helm 99\.0\.0 or newer"),
    ):
        chart.render({}, name="chassis", namespace="chassis", is_install=True)
    assert k8s.render().objects, "the real chart renders on this Helm"


# --- the bake file --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bake() -> dict[str, Any]:
    with (ROOT / "docker-bake.hcl").open() as handle:
        parsed: dict[str, Any] = hcl2.load(handle)
    return parsed


def _blocks(bake: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    blocks: dict[str, dict[str, Any]] = {}
    for entry in bake.get(kind, []):
        for name, body in entry.items():
            blocks[name.strip('"')] = body
    return blocks


def _unquote(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip('"')
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    if isinstance(value, dict):
        return {_unquote(key): _unquote(item) for key, item in value.items()}
    return value


def _variables(bake: dict[str, Any]) -> dict[str, Any]:
    return {name: _unquote(body["default"]) for name, body in _blocks(bake, "variable").items()}


def test_the_bake_file_builds_every_service_for_amd64_and_arm64(bake: dict[str, Any]) -> None:
    variables = {
        name: _unquote(body["default"]) for name, body in _blocks(bake, "variable").items()
    }
    targets = {name: _unquote(body) for name, body in _blocks(bake, "target").items()}
    groups = {name: _unquote(body) for name, body in _blocks(bake, "group").items()}

    assert set(groups["default"]["targets"]) == set(SERVICES) == _dockerfile_services()
    assert set(variables["PLATFORMS"]) == {"linux/amd64", "linux/arm64"}
    shared = targets["_service"]
    assert shared["context"] == "."
    assert (ROOT / shared["dockerfile"]).is_file()
    assert shared["platforms"] in ("PLATFORMS", "${PLATFORMS}")  # the variable, not a copy
    for name in SERVICES:
        target = targets[name]
        assert target["inherits"] == ["_service"], name
        assert target["args"] == {"SERVICE": name}, name
        assert target["tags"] == [f"${{REGISTRY}}/{name}:${{TAG}}"], name


def test_the_bake_tags_are_the_images_compose_runs(bake: dict[str, Any]) -> None:
    variables = {
        name: _unquote(body["default"]) for name, body in _blocks(bake, "variable").items()
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES:
        tag = f"{variables['REGISTRY']}/{name}:${{TAG:-{variables['TAG']}}}"
        assert compose["services"][name]["image"] == tag, name
