"""The chart's Grafana dashboards: ConfigMaps for the Grafana sidecar, off by default.

The chart carries copies of deploy/observability/grafana/dashboards (Helm reads only
files inside the chart); these tests keep the copies byte-equal and read the rendered
ConfigMaps the way the sidecar does: by label, one JSON file per data key.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.k8s import CHART, KUBE_VERSIONS, NAMESPACE, RELEASE, render
from tests.support.dashboards import DASHBOARD_FILES, DASHBOARDS_DIR

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)

COPIES = CHART / "files" / "dashboards"
ON = {"metrics": {"grafanaDashboards": {"enabled": True}}}
# Kubernetes refuses a ConfigMap whose data is larger than this.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024


def _dashboard_maps(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        obj
        for obj in render(values).of_kind("ConfigMap")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"
    ]


def test_the_chart_copies_equal_the_observability_dashboards() -> None:
    copies = sorted(path.name for path in COPIES.glob("*.json"))
    assert copies == [path.name for path in DASHBOARD_FILES], (
        f"{COPIES.relative_to(CHART.parents[2])} must hold exactly the dashboards of "
        f"{DASHBOARDS_DIR.relative_to(CHART.parents[2])}: copy them over"
    )
    for path in DASHBOARD_FILES:
        assert (COPIES / path.name).read_bytes() == path.read_bytes(), (
            f"files/dashboards/{path.name} differs from {path.name}: copy it over"
        )


def test_the_chart_lints_strictly_with_dashboards_on() -> None:
    report = helm_python.lint(str(CHART), ON, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert report["errors"] == [], report["errors"]
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_dashboards_are_off_by_default() -> None:
    assert _dashboard_maps({}) == []
    assert not any(
        "grafana-dashboards" in path and text.strip() for path, text in render().files.items()
    )


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_on_renders_one_valid_labelled_configmap_per_dashboard(kube_version: str) -> None:
    maps = _dashboard_maps(ON)
    assert len(maps) == len(DASHBOARD_FILES)
    by_file: dict[str, dict[str, Any]] = {}
    for obj in maps:
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"ConfigMap/{obj['metadata']['name']}: {error.message} at {error.path}")
        metadata = obj["metadata"]
        assert metadata["namespace"] == NAMESPACE
        assert metadata["name"].startswith(f"{RELEASE}-dashboard-")
        assert metadata["labels"]["grafana_dashboard"] == "1"
        assert "annotations" not in metadata
        ((key, text),) = obj["data"].items()
        assert len(text.encode()) < CONFIGMAP_LIMIT_BYTES
        by_file[key] = json.loads(text)
    assert by_file == {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def test_the_sidecar_label_and_folder_annotation_come_from_values() -> None:
    values = {
        "metrics": {
            "grafanaDashboards": {
                "enabled": True,
                "labels": {"grafana_dashboard": None, "dashboards": "chassis"},
                "annotations": {"grafana_folder": "Chassis"},
            }
        }
    }
    maps = _dashboard_maps(values)
    assert len(maps) == len(DASHBOARD_FILES)
    for obj in maps:
        assert obj["metadata"]["labels"]["dashboards"] == "chassis"
        assert "grafana_dashboard" not in obj["metadata"]["labels"]
        assert obj["metadata"]["annotations"] == {"grafana_folder": "Chassis"}


@pytest.mark.parametrize(
    ("dashboards", "complaint"),
    [
        ({"enabled": "yes"}, "want boolean"),
        ({"enabled": True, "labels": {"grafana_dashboard": None}}, "minProperties"),
        ({"enabled": True, "labels": {"grafana_dashboard": 1}}, "want string"),
        ({"enabled": True, "folder": "Chassis"}, "additional properties"),
    ],
)
def test_the_values_schema_refuses_bad_dashboard_values(
    dashboards: dict[str, Any], complaint: str
) -> None:
    with (
        helm_python.Chart.load(str(CHART)) as chart,
        pytest.raises(helm_python.HelmValuesError) as refused,
    ):
        chart.validate_schema({"metrics": {"grafanaDashboards": dashboards}})
    assert "grafanaDashboards" in str(refused.value)
    assert complaint in str(refused.value)
