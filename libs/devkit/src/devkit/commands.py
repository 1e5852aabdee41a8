"""The platform's command lines and environments, built without running anything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8000
#: Each process's port is the base plus its offset: gateway, users, orders, worker health.
PORT_OFFSETS = {"gateway": 0, "users": 1, "orders": 2, "worker": 3}


def ports_from(base: int) -> dict[str, int]:
    """The four ports for a port base (``--port-base``): 8000 gives 8000-8003."""
    if not 1 <= base <= 65535 - max(PORT_OFFSETS.values()):
        raise ValueError(f"port base {base} leaves no room for four ports")
    return {name: base + offset for name, offset in PORT_OFFSETS.items()}


PORTS = ports_from(DEFAULT_PORT_BASE)
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


def service_env(
    service: str, *, data_dir: Path, redis_url: str | None, ports: Mapping[str, int] = PORTS
) -> dict[str, str]:
    """What the supervisor sets on top of the inherited environment for ``service``."""
    prefix = env_prefix(service)
    env = {"PYTHONUNBUFFERED": "1", f"{prefix}DATA_DIR": str(data_dir)}
    if redis_url is not None:
        env[f"{prefix}REDIS__URL"] = redis_url
    if service == "worker":
        env[f"{prefix}SERVER__PORT"] = str(ports["worker"])
    env.update(wiring_env(service, ports))
    return env


def wiring_env(service: str, ports: Mapping[str, int]) -> dict[str, str]:
    """Where ``service`` finds the others when they are not on the default ports.

    Empty on the defaults: the services' own defaults already name 8000-8003.
    """
    if dict(ports) == PORTS:
        return {}
    users, orders, worker = (
        f"http://{HOST}:{ports[name]}" for name in ("users", "orders", "worker")
    )
    jwks = f"{users}/.well-known/jwks.json"
    wiring = {
        "users": {"USERS_SERVER__PORT": str(ports["users"])},
        "orders": {"ORDERS_SERVER__PORT": str(ports["orders"]), "ORDERS_AUTH__JWKS_URL": jwks},
        "gateway": {
            "GATEWAY_SERVER__PORT": str(ports["gateway"]),
            "GATEWAY_UPSTREAMS__USERS__BASE_URL": users,
            "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": orders,
            "GATEWAY_AUTH__JWKS_URL": jwks,
            "GATEWAY_STATUS__WORKER_URL": worker,
        },
        "worker": {
            "WORKER_UPSTREAMS__USERS__BASE_URL": users,
            "WORKER_UPSTREAMS__ORDERS__BASE_URL": orders,
        },
    }
    return wiring[service]


def build_services(
    python: str,
    *,
    data_dir: Path,
    redis_url: str | None,
    worker: bool = True,
    ports: Mapping[str, int] = PORTS,
    console_dir: Path | None = None,
) -> list[ServiceSpec]:
    """The four processes in start order (``worker=False`` leaves the worker out).

    ``console_dir`` is where the gateway finds the built web console.
    """
    specs = []
    for name in START_ORDER:
        if name == "worker" and not worker:
            continue
        port = ports[name]
        command = (
            worker_command(python) if name == "worker" else uvicorn_command(python, name, port)
        )
        env = service_env(name, data_dir=data_dir, redis_url=redis_url, ports=ports)
        if name == "gateway" and console_dir is not None:
            env["GATEWAY_CONSOLE__DIRECTORY"] = str(console_dir)
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
