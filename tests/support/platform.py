"""The whole platform as real processes, for suites that cross service boundaries.

users, orders and gateway run under uvicorn, the worker under Arq, each on a
port chosen once so a suite can stop, kill and restart one service and find it
at the same address again (fault and shutdown scenarios). Each service gets its
own Postgres database with its Alembic history applied; all share one Redis
database. `route` lets a suite put something (a fault proxy) between a service
and the peer it calls: it receives ``(caller, peer, url)`` and returns the URL
the caller should use instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chassis.database.migrations import upgrade_to_head
from chassis.testing.processes import (
    free_ports,
    start_process,
    stop_process_group,
    uvicorn_command,
)

ROOT = Path(__file__).resolve().parents[2]
WORKER_CLIENT_SECRET = "platform-worker-client-secret"
SERVICES = ("users", "orders", "gateway", "worker")

Route = Callable[[str, str, str], str]


def direct(caller: str, peer: str, url: str) -> str:
    """The default route: every service calls its peers straight."""
    del caller, peer
    return url


@dataclass
class PlatformConfig:
    """What differs between suites: where the data lives and what each process sees.

    `env` goes to every process, `service_env[name]` to one (applied last, so it
    wins); `redis_url` and the database URLs are those the services are given
    (a suite may pass a proxy's address), while `migrate_*` URLs, when set, are
    the ones migrations run against directly.
    """

    users_database_url: str
    orders_database_url: str
    redis_url: str
    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    route: Route = direct
    with_worker: bool = True
    ready_timeout: float = 60.0
    #: When set, each service's stdout and stderr are appended to ``<log_dir>/<name>.log``.
    log_dir: Path | None = None
    #: Fixed ports by service name (a suite with its own port range); free ones otherwise.
    ports: Mapping[str, int] | None = None


class Platform:
    """Four running services; `stop`, `kill` and `start` act on one of them by name."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.ports = (
            dict(config.ports)
            if config.ports is not None
            else dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        )
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    @property
    def users(self) -> str:
        return self.url("users")

    @property
    def orders(self) -> str:
        return self.url("orders")

    @property
    def worker_health(self) -> str:
        return self.url("worker")

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self._processes[name]

    def start(self, name: str) -> None:
        """Start one service and wait for its readiness endpoint."""
        command = self._command(name)
        output = self._open_log(name)
        self._processes[name] = start_process(
            command,
            ready_url=self.url(name) + "/health/ready",
            env=self._env(name),
            timeout=self.config.ready_timeout,
            output=output,
        )
        if self._processes[name].poll() is not None:
            # Ready, yet exited: what answered on its port was some other process.
            raise RuntimeError(f"{name} exited during start-up; is port {self.ports[name]} taken?")

    def log_path(self, name: str) -> Path:
        """Where `name`'s output goes (needs ``config.log_dir``)."""
        if self.config.log_dir is None:
            raise ValueError("the platform was started without log_dir")
        return self.config.log_dir / f"{name}.log"

    def _open_log(self, name: str) -> IO[bytes] | None:
        if self.config.log_dir is None:
            return None
        if name not in self._logs:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            # Appended, so a restarted service keeps what it wrote before.
            self._logs[name] = self.log_path(name).open("ab")
        return self._logs[name]

    def stop(self, name: str, *, timeout: float = 20.0) -> int:
        """SIGTERM one service (its whole process group) and wait; returns its exit code."""
        process = self._processes.pop(name)
        stop_process_group(process, timeout=timeout)
        return process.returncode

    def kill(self, name: str) -> None:
        """SIGKILL one service's process group: no drain, no clean-up."""
        process = self._processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def running(self) -> set[str]:
        """The services started and not stopped since."""
        return set(self._processes)

    def start_all(self) -> None:
        for name in SERVICES:
            if name == "worker" and not self.config.with_worker:
                continue
            self.start(name)

    def stop_all(self) -> None:
        # Reverse order: callers before the services they call.
        for name in reversed(SERVICES):
            if name in self._processes:
                self.stop(name)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def process_env(self, name: str) -> dict[str, str]:
        """The environment `name` runs with (beyond the test's own), e.g. for its CLI commands."""
        return self._env(name)

    def _command(self, name: str) -> list[str]:
        if name == "worker":
            return [sys.executable, "-m", "arq", "worker.main.WorkerSettings"]
        return uvicorn_command(f"{name}.main:create_app", self.ports[name])

    def _env(self, name: str) -> dict[str, str]:
        config = self.config
        route = config.route
        jwks = route(name, "users", self.users) + "/.well-known/jwks.json"
        per_service: dict[str, dict[str, str]] = {
            "users": {
                "USERS_DATABASE__URL": config.users_database_url,
                "USERS_REDIS__URL": config.redis_url,
                "USERS_DATA_DIR": str(config.data_dir / "users"),
                "USERS_SERVICE_CLIENTS": json.dumps(
                    {"worker": {"secret": WORKER_CLIENT_SECRET, "scopes": ["orders:internal"]}}
                ),
            },
            "orders": {
                "ORDERS_DATABASE__URL": config.orders_database_url,
                "ORDERS_REDIS__URL": config.redis_url,
                "ORDERS_AUTH__JWKS_URL": jwks,
                "ORDERS_OUTBOX__POLL_INTERVAL_SECONDS": "0.05",
            },
            "gateway": {
                "GATEWAY_REDIS__URL": config.redis_url,
                "GATEWAY_AUTH__JWKS_URL": jwks,
                "GATEWAY_UPSTREAMS__USERS__BASE_URL": route("gateway", "users", self.users),
                "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": route("gateway", "orders", self.orders),
                "GATEWAY_EVENTS__HEARTBEAT_SECONDS": "1",
            },
            "worker": {
                "WORKER_REDIS__URL": config.redis_url,
                "WORKER_SERVER__PORT": str(self.ports["worker"]),
                "WORKER_UPSTREAMS__USERS__BASE_URL": route("worker", "users", self.users),
                "WORKER_UPSTREAMS__ORDERS__BASE_URL": route("worker", "orders", self.orders),
                "WORKER_CLIENT_SECRET": WORKER_CLIENT_SECRET,
            },
        }
        return {
            "PYTHONUNBUFFERED": "1",
            **config.env,
            **per_service[name],
            **config.service_env.get(name, {}),
        }


def migrate(*, users_database_url: str, orders_database_url: str) -> None:
    """Apply users' and orders' Alembic histories (a separate step, as in production)."""
    upgrade_to_head(str(ROOT / "services/users/migrations"), users_database_url)
    upgrade_to_head(str(ROOT / "services/orders/migrations"), orders_database_url)


@contextmanager
def running_platform(config: PlatformConfig) -> Iterator[Platform]:
    """Start every service (migrations are the caller's step) and stop them all on exit."""
    platform = Platform(config)
    try:
        platform.start_all()
        yield platform
    finally:
        platform.stop_all()
