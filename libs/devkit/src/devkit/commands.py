"""The platform's command lines and environments, built without running anything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PORTS = {"gateway": 8000, "users": 8001, "orders": 8002, "worker": 8003}
MIGRATED = ("users", "orders")
FACTORIES = {
    "users": "users.main:create_app",
    "orders": "orders.main:create_app",
    "gateway": "gateway.main:create_app",
}
# Start order: users first (the others fetch its JWKS), the worker last.
START_ORDER = ("users", "orders", "gateway", "worker")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ready_url(self) -> str:
        return self.base_url + "/health/ready"

    @property
    def metrics_url(self) -> str:
        return self.base_url + "/metrics"


def env_prefix(name: str) -> str:
    return name.upper() + "_"


def migration_command(python: str, root: Path, service: str) -> list[str]:
    """``alembic -c services/<service>/alembic.ini upgrade head`` with this interpreter."""
    ini = root / "services" / service / "alembic.ini"
    return [python, "-m", "alembic", "-c", str(ini), "upgrade", "head"]


def uvicorn_command(python: str, service: str, port: int) -> list[str]:
    # --no-proxy-headers: the chassis' trusted-proxy allowlist alone judges X-Forwarded-*.
    return [
        python,
        "-m",
        "uvicorn",
        "--factory",
        FACTORIES[service],
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-proxy-headers",
    ]


def worker_command(python: str) -> list[str]:
    return [python, "-m", "arq", "worker.main.WorkerSettings"]


def service_env(service: str, *, data_dir: Path, redis_url: str | None) -> dict[str, str]:
    """What the supervisor sets on top of the inherited environment for ``service``."""
    prefix = env_prefix(service)
    env = {"PYTHONUNBUFFERED": "1", f"{prefix}DATA_DIR": str(data_dir)}
    if redis_url is not None:
        env[f"{prefix}REDIS__URL"] = redis_url
    if service == "worker":
        env[f"{prefix}SERVER__PORT"] = str(PORTS["worker"])
    return env


def build_services(
    python: str, *, data_dir: Path, redis_url: str | None, worker: bool = True
) -> list[ServiceSpec]:
    """The four processes in start order (``worker=False`` leaves the worker out)."""
    specs = []
    for name in START_ORDER:
        if name == "worker" and not worker:
            continue
        port = PORTS[name]
        command = (
            worker_command(python) if name == "worker" else uvicorn_command(python, name, port)
        )
        env = service_env(name, data_dir=data_dir, redis_url=redis_url)
        specs.append(ServiceSpec(name=name, command=command, port=port, env=env))
    return specs


def database_of(service: str, env: Mapping[str, str], data_dir: Path) -> str:
    """Where ``service`` keeps its data, for the banner (password hidden)."""
    url = env.get(f"{env_prefix(service)}DATABASE__URL", "").strip()
    if not url:
        return f"SQLite {data_dir / (service + '.sqlite3')}"
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{location}"
