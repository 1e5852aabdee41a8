"""The Helm chart (deploy/helm/chassis) checked offline with Helm's own engine.

Every values set is linted strictly, rendered and validated object by object against the
Kubernetes schemas of the oldest supported and a recent version (kubernetes-validate,
strict: unknown fields fail). The assertions then read the rendered objects the way a
reviewer would: resources, probes, security, disruption budgets, network policies,
migration hooks, secrets, the optional monitoring objects and the values schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from chassis.settings import UpstreamSettings
from tests.deploy.k8s import (
    CHART,
    KUBE_VERSIONS,
    MONITORING_APIS,
    NAMESPACE,
    RELEASE,
    ROOT,
    SERVICES,
    VALUES_SETS,
    Rendered,
    containers,
    deep_merge,
    deployment,
    env_of,
    name,
    pod_spec,
    render,
    render_set,
    values_of,
    workloads,
)

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)

PORTS = {"users": 8001, "orders": 8002, "gateway": 8000, "worker": 8003}
HTTP_SERVICES = ("users", "orders", "gateway")
RULES_FILE = ROOT / "deploy" / "observability" / "prometheus" / "rules" / "chassis.yml"

# --- lint, render, validate --------------------------------------------------------------


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_chart_lints_strictly(values_set: str) -> None:
    report = helm_python.lint(
        str(CHART), values_of(values_set), strict=True, kube_version=f"v{KUBE_VERSIONS[0]}"
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report["errors"]
    assert problems == [], problems


def test_lint_reports_values_the_schema_refuses() -> None:
    report = helm_python.lint(str(CHART), {"gateway": {"replicaCount": "three"}}, strict=True)
    errors = " ".join(m["error"] for m in report["messages"] if m["severity"] >= 3)
    assert "replicaCount" in errors


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_rendered_object_is_valid_for_kubernetes(values_set: str, kube_version: str) -> None:
    values = deep_merge(values_of(values_set), {"loadtest": {"enabled": True}})
    rendered = render(values, api_versions=MONITORING_APIS, kube_version=kube_version)
    checked = 0
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: no upstream schema; their fields are asserted below
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where} ({values_set}, {kube_version}): {error.message} at {error.path}")
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_object_is_namespaced_to_the_release_and_labelled(values_set: str) -> None:
    for obj in render_set(values_set).objects:
        metadata = obj["metadata"]
        assert metadata["namespace"] == NAMESPACE, metadata["name"]
        assert metadata["labels"]["app.kubernetes.io/instance"] == RELEASE, metadata["name"]
        assert metadata["name"].startswith(f"{RELEASE}"), metadata["name"]


def test_notes_render_with_the_way_in() -> None:
    notes = render_set("default").notes
    assert f"port-forward svc/{name('gateway')} 8000:8000" in notes
    assert f"helm test {RELEASE}" in notes
    assert "chassis-secrets/worker-client-secret" in notes
    assert "api.chassis.example.com" in render_set("prod").notes


# --- containers: resources, probes, security, images -------------------------------------


def all_containers(values_set: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    values = deep_merge(values_of(values_set), {"loadtest": {"enabled": True}})
    for obj in workloads(render(values)):
        for container in containers(obj):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj, container


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_container_has_requests_and_limits(values_set: str) -> None:
    for where, _, container in all_containers(values_set):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_container_runs_locked_down(values_set: str) -> None:
    for where, obj, container in all_containers(values_set):
        pod = pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        if values_set != "dev":
            assert security["readOnlyRootFilesystem"] is True, where
        if "readOnlyRootFilesystem" in security and obj["kind"] != "Pod":
            # Everything the image writes goes to /tmp: an emptyDir.
            volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], where  # noqa: S108 - a mount path


def test_only_the_dev_set_has_a_writable_root_filesystem_for_live_update() -> None:
    for _, _, container in all_containers("dev"):
        assert container["securityContext"]["readOnlyRootFilesystem"] is False


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_service_has_startup_liveness_and_readiness_probes(values_set: str) -> None:
    rendered = render_set(values_set)
    for service in SERVICES:
        (container,) = containers(deployment(rendered, service))
        assert container["ports"] == [
            {"name": "http", "containerPort": PORTS[service], "protocol": "TCP"}
        ]
        expected = {
            "startupProbe": "/health/live",
            "livenessProbe": "/health/live",
            "readinessProbe": "/health/ready",
        }
        for probe, path in expected.items():
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (service, probe)
        # Startup allows a slow first start before liveness may kill the container.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_no_image_is_latest_or_untagged(values_set: str) -> None:
    for where, _, container in all_containers(values_set):
        image = container["image"]
        reference = image.split("@", 1)[0]
        repository, _, tag = reference.rpartition(":")
        assert repository, f"{where}: {image} is untagged"
        assert "/" not in tag, f"{where}: {image} is untagged"
        assert tag != "latest", f"{where}: {image}"


def test_images_take_the_registry_tag_and_digest_from_values() -> None:
    digest = "sha256:" + "a" * 64
    rendered = render(
        {
            "image": {"registry": "registry.example.com/team/", "tag": "1.2.3"},
            "gateway": {"image": {"digest": digest}},
        }
    )
    (users,) = containers(deployment(rendered, "users"))
    (gateway,) = containers(deployment(rendered, "gateway"))
    assert users["image"] == "registry.example.com/team/chassis-users:1.2.3"
    assert gateway["image"] == f"registry.example.com/team/chassis-gateway:1.2.3@{digest}"
    (default,) = containers(deployment(render(), "orders"))
    app_version = helm_python.Chart.load(str(CHART)).metadata["appVersion"]
    assert default["image"] == f"chassis-orders:{app_version}"


# --- shutdown: grace period and preStop ----------------------------------------------------


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_grace_period_outlasts_the_pre_stop_pause_and_the_graceful_timeout(
    values_set: str,
) -> None:
    rendered = render_set(values_set)
    for service in SERVICES:
        obj = deployment(rendered, service)
        (container,) = containers(obj)
        config = rendered.get("ConfigMap", name(service))["data"]
        graceful = int(config["GRACEFUL_TIMEOUT"])
        pause = 0
        if "lifecycle" in container:
            command = container["lifecycle"]["preStop"]["exec"]["command"]
            assert command[0] == "sleep", service
            pause = int(command[1])
        grace = pod_spec(obj)["terminationGracePeriodSeconds"]
        assert grace > pause + graceful, (service, grace, pause, graceful)
        if service in HTTP_SERVICES:
            assert pause > 0, f"{service}: no preStop pause to let endpoints drain"


def test_the_entrypoint_reads_the_graceful_timeout_the_chart_sets() -> None:
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert '--timeout-graceful-shutdown "$GRACEFUL_TIMEOUT"' in entrypoint
    assert "SERVER__GRACEFUL_TIMEOUT_SECONDS" in entrypoint
    # The preStop hook execs `sleep`: the runtime image is Debian slim, which has it.
    assert re.search(r"^ARG PYTHON_BASE=python:3\.11-slim", (ROOT / "Dockerfile").read_text(), re.M)


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_servers_keep_idle_connections_longer_than_their_callers(values_set: str) -> None:
    """A caller reusing a connection the server is closing fails the call (a POST is not
    retried): each server's keep-alive must outlast the upstream client's expiry."""
    rendered = render_set(values_set)
    expiry = UpstreamSettings(base_url="http://unused").keepalive_expiry_seconds
    for service in HTTP_SERVICES:
        config = rendered.get("ConfigMap", name(service))["data"]
        assert int(config["KEEP_ALIVE"]) > expiry, (service, values_set)


# --- scaling and disruption ------------------------------------------------------------------


def replicas_at_least(rendered: Rendered, service: str) -> int:
    hpas = [
        h
        for h in rendered.of_kind("HorizontalPodAutoscaler")
        if h["metadata"]["name"] == name(service)
    ]
    if hpas:
        return int(hpas[0]["spec"]["minReplicas"])
    return int(deployment(rendered, service)["spec"]["replicas"])


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_each_multi_replica_deployment_has_a_disruption_budget(values_set: str) -> None:
    rendered = render_set(values_set)
    budgets = {pdb["metadata"]["name"]: pdb for pdb in rendered.of_kind("PodDisruptionBudget")}
    for obj in rendered.of_kind("Deployment"):
        deployment_name = obj["metadata"]["name"]
        service = deployment_name.removeprefix(f"{RELEASE}-")
        if service not in SERVICES or replicas_at_least(rendered, service) < 2:
            continue
        assert deployment_name in budgets, f"{deployment_name} ({values_set}) has no PDB"
        selector = budgets[deployment_name]["spec"]["selector"]["matchLabels"]
        assert selector == obj["spec"]["selector"]["matchLabels"]


def test_prod_autoscales_every_service_and_spreads_across_zones() -> None:
    rendered = render_set("prod")
    for service in SERVICES:
        hpa = rendered.get("HorizontalPodAutoscaler", name(service))
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name(service),
        }
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        obj = deployment(rendered, service)
        assert "replicas" not in obj["spec"], "the HPA owns the replica count"
        spread = pod_spec(obj)["topologySpreadConstraints"]
        zone = next(c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone")
        assert zone["whenUnsatisfiable"] == "DoNotSchedule"
        assert zone["labelSelector"]["matchLabels"] == obj["spec"]["selector"]["matchLabels"]


def test_dev_runs_one_replica_each_with_debug_logs() -> None:
    rendered = render_set("dev")
    for service in SERVICES:
        assert deployment(rendered, service)["spec"]["replicas"] == 1
        config = rendered.get("ConfigMap", name(service))["data"]
        assert config[f"{service.upper()}_LOG__LEVEL"] == "DEBUG"
    assert rendered.of_kind("HorizontalPodAutoscaler") == []
    assert rendered.of_kind("PodDisruptionBudget") == []


def test_log_export_over_otlp_is_off_by_default_and_needs_the_collector_endpoint() -> None:
    def exporting(rendered: Rendered) -> dict[str, str | None]:
        return {
            service: rendered.get("ConfigMap", name(service))["data"].get(
                f"{service.upper()}_LOG__OTLP_EXPORT"
            )
            for service in SERVICES
        }

    for values_set in ("default", "staging", "prod"):
        assert set(exporting(render_set(values_set)).values()) == {None}, values_set
    assert set(exporting(render_set("dev")).values()) == {"true"}
    assert set(exporting(render({"log": {"otlpExport": True}})).values()) == {"true"}
    # Without an endpoint there is nowhere to send them (and no egress to the collector).
    off = render({"log": {"otlpExport": True}, "tracing": {"otlpEndpoint": ""}})
    assert set(exporting(off).values()) == {None}


def test_custom_metrics_are_appended_to_the_cpu_target() -> None:
    custom = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "http_requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "100"},
        },
    }
    rendered = render({"gateway": {"autoscaling": {"enabled": True, "customMetrics": [custom]}}})
    metrics = rendered.get("HorizontalPodAutoscaler", name("gateway"))["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Pods"]
    assert metrics[1] == custom


def test_a_budget_with_both_bounds_is_refused() -> None:
    with pytest.raises(helm_python.HelmError, match="exactly one of minAvailable"):
        render({"users": {"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}})


# --- migrations -----------------------------------------------------------------------------


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_migrations_are_a_pre_install_and_pre_upgrade_hook_per_database(values_set: str) -> None:
    rendered = render_set(values_set)
    jobs = {job["metadata"]["name"]: job for job in rendered.of_kind("Job")}
    assert set(jobs) == {name("users-migrate"), name("orders-migrate")}
    for service in ("users", "orders"):
        job = jobs[name(f"{service}-migrate")]
        annotations = job["metadata"]["annotations"]
        assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        pod = pod_spec(job)
        assert pod["restartPolicy"] == "Never"
        # A pre-install hook runs before the chart's ServiceAccount exists.
        assert "serviceAccountName" not in pod
        (container,) = containers(job)
        assert "command" not in container
        assert container["args"] == [
            "alembic",
            "-c",
            f"services/{service}/alembic.ini",
            "upgrade",
            "head",
        ]
        assert (ROOT / "services" / service / "alembic.ini").is_file()
        env = env_of(container)
        assert env[f"{service.upper()}_DATABASE__URL"]["value"].startswith("postgresql+asyncpg://")


# --- monitoring ---------------------------------------------------------------------------


def test_monitoring_objects_render_only_where_the_cluster_has_their_api() -> None:
    without = render_set("default")
    assert without.of_kind("ServiceMonitor") == []
    assert without.of_kind("PrometheusRule") == []
    with_api = render_set("default", monitoring=True)
    monitors = {m["metadata"]["name"]: m for m in with_api.of_kind("ServiceMonitor")}
    assert set(monitors) == {name(s) for s in SERVICES}
    for service in SERVICES:
        spec = monitors[name(service)]["spec"]
        service_obj = with_api.get("Service", name(service))
        assert spec["selector"]["matchLabels"] == service_obj["spec"]["selector"]
        assert spec["endpoints"][0]["port"] == service_obj["spec"]["ports"][0]["name"]
        assert spec["endpoints"][0]["path"] == "/metrics"
    assert len(with_api.of_kind("PrometheusRule")) == 1


def test_monitoring_objects_can_be_turned_off_even_with_the_api() -> None:
    off = {"metrics": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}}}
    rendered = render(off, api_versions=MONITORING_APIS)
    assert rendered.of_kind("ServiceMonitor") == []
    assert rendered.of_kind("PrometheusRule") == []


def test_the_prometheus_rule_carries_the_observability_alert_rules() -> None:
    copied = CHART / "files" / "prometheus-rules.yml"
    assert copied.read_text() == RULES_FILE.read_text(), (
        "deploy/helm/chassis/files/prometheus-rules.yml must equal "
        "deploy/observability/prometheus/rules/chassis.yml: copy it over"
    )
    (rule,) = render_set("prod", monitoring=True).of_kind("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# --- ingress, test hook, locust -----------------------------------------------------------


def test_the_ingress_routes_to_the_gateway_service() -> None:
    assert render_set("default").of_kind("Ingress") == []
    ingress = render_set("prod").get("Ingress", name("gateway"))
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "api.chassis.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": name("gateway"), "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "chassis-tls"


def test_the_helm_test_pod_waits_for_gateway_readiness() -> None:
    (pod,) = render_set("default").of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    (container,) = containers(pod)
    script = container["command"][-1]
    assert f"http://{name('gateway')}:8000/health/ready" in script
    compile(script, "helm-test", "exec")
    assert render_set("dev").of_kind("Pod") == [], "Tilt would run the test pod as a workload"


def test_locust_runs_one_master_and_the_configured_workers_against_the_gateway() -> None:
    assert render_set("default").of_kind("Service") == render(
        {"loadtest": {"enabled": False}}
    ).of_kind("Service")
    rendered = render({"loadtest": {"enabled": True, "workers": 3, "env": {"LOCUST_USERS": 50}}})
    master = rendered.get("Deployment", name("loadtest-master"))
    workers = rendered.get("Deployment", name("loadtest-worker"))
    assert master["spec"]["replicas"] == 1
    assert workers["spec"]["replicas"] == 3
    (master_container,) = containers(master)
    (worker_container,) = containers(workers)
    assert master_container["args"] == ["--master"]
    assert worker_container["args"] == ["--worker", "--master-host", name("loadtest-master")]
    for container in (master_container, worker_container):
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["LOCUST_LOCUSTFILE"] == "/app/loadtests/locustfile.py"
        assert env["LOCUST_HOST"] == f"http://{name('gateway')}:8000"
        assert env["LOCUST_USERS"] == "50"
        assert container["image"] == "chassis-loadtest:0.1.0"
    service = rendered.get("Service", name("loadtest-master"))
    assert {p["port"] for p in service["spec"]["ports"]} == {8089, 5557}
    policy = rendered.get("NetworkPolicy", name("loadtest"))
    assert {rule["ports"][0]["port"] for rule in policy["spec"]["egress"]} >= {8000, 5557}


# --- the values schema -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"gateway": {"replicaCount": "two"}}, "want integer"),
        ({"users": {"port": 70000}}, "maximum"),
        ({"orders": {"unknownKey": True}}, "additional properties"),
        ({"unknownTopLevel": 1}, "additional properties"),
        ({"environment": "prod"}, "environment"),
        ({"image": {"tag": "latest"}}, "tag"),
        ({"worker": {"signingKey": {"existingSecret": "x"}}}, "worker"),
        ({"gateway": {"resources": {"limits": None}}}, "limits"),
        ({"networkPolicy": {"postgres": {"to": [], "ports": []}}}, "postgres"),
        ({"users": {"server": {"keepAliveSeconds": 4}}}, "keepAliveSeconds"),
        ({"log": {"otlpExport": "yes"}}, "otlpExport"),
    ],
)
def test_the_values_schema_refuses(values: dict[str, Any], complaint: str) -> None:
    with (
        helm_python.Chart.load(str(CHART)) as chart,
        pytest.raises(helm_python.HelmValuesError) as refused,
    ):
        chart.validate_schema(values)
    assert complaint in str(refused.value)


@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_the_values_schema_accepts_every_values_set(values_set: str) -> None:
    with helm_python.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values_of(values_set))


def test_a_changed_setting_rolls_only_that_services_pods() -> None:
    def checksums(rendered: Rendered) -> dict[str, str]:
        return {
            service: deployment(rendered, service)["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for service in SERVICES
        }

    before = checksums(render())
    after = checksums(render({"gateway": {"env": {"GATEWAY_OVERVIEW__RECENT_ORDERS": "7"}}}))
    assert [s for s in SERVICES if before[s] != after[s]] == ["gateway"]
    everywhere = checksums(render({"log": {"level": "WARNING"}}))
    assert all(before[s] != everywhere[s] for s in SERVICES)
