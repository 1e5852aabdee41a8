"""``chassis-dev`` (``make dev``): the whole platform as local processes, one command.

Migrations first (users, orders), then users, orders, gateway and the worker,
each waited for on ``/health/ready`` before the next. SQLite under the data
directory unless ``<PREFIX>DATABASE__URL`` is set; Redis from ``REDIS_URL``, the
local one on 127.0.0.1:6379, or a ``redis-server`` started here. Ctrl-C or
SIGTERM stops every process (reverse order, SIGKILL after a grace period); a
process dying on its own stops the rest and exits non-zero.

Ports: gateway 8000, users 8001, orders 8002, worker health/metrics 8003, or the
same four from ``--port-base`` (tests run a second platform beside a developer's).
The gateway serves the web console from ``console/dist`` (``make console``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from devkit.commands import (
    DEFAULT_PORT_BASE,
    HOST,
    MIGRATED,
    PORTS,
    ServiceSpec,
    build_services,
    database_of,
    migration_command,
    ports_from,
    service_env,
)
from devkit.logs import Console
from devkit.processes import (
    ManagedProcess,
    StartupError,
    free_port,
    http_ready,
    port_in_use,
    wait_until,
)
from devkit.redis_discovery import (
    INSTALL_HINT,
    RedisSource,
    discover_redis,
    ping,
    redis_server_command,
)

MIGRATION_TIMEOUT_SECONDS = 300.0


def repo_root() -> Path:
    """The workspace root: where ``services/users/alembic.ini`` is, from this file or the cwd."""
    for candidate in (Path(__file__).resolve().parents[4], *Path.cwd().resolve().parents):
        if (candidate / "services" / "users" / "alembic.ini").is_file():
            return candidate
    cwd = Path.cwd().resolve()
    if (cwd / "services" / "users" / "alembic.ini").is_file():
        return cwd
    raise SystemExit("chassis-dev: cannot find the workspace (services/users/alembic.ini)")


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chassis-dev",
        description=(
            "Run users (8001), orders (8002), gateway (8000) and the worker (health 8003) "
            "as local processes, after applying the migrations."
        ),
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(env.get("CHASSIS_DEV_PORT_BASE", str(DEFAULT_PORT_BASE))),
        help="gateway port; users, orders and the worker take the next three "
        f"(env CHASSIS_DEV_PORT_BASE; default {DEFAULT_PORT_BASE})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env.get("CHASSIS_DEV_DATA_DIR", ".data")),
        help="directory for SQLite files and other local data (env CHASSIS_DEV_DATA_DIR; "
        "default .data)",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        default=env.get("CHASSIS_DEV_NO_WORKER", "").lower() in {"1", "true", "yes"},
        help="do not start the Arq worker (env CHASSIS_DEV_NO_WORKER=1); orders stay pending",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=float(env.get("CHASSIS_DEV_READY_TIMEOUT", "60")),
        help="seconds each process may take to become ready (default 60)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=float(env.get("CHASSIS_DEV_GRACE", "25")),
        help="seconds each process may take to stop after SIGTERM before SIGKILL (default 25)",
    )
    return parser.parse_args(argv)


class StopFlag:
    """Set by SIGINT/SIGTERM; read by the supervisor's loops (no locks in the handler)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self) -> bool:
        return self.signal_name is not None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handler)
        signal.signal(signal.SIGTERM, self.handler)


@dataclass
class Supervisor:
    console: Console
    stop: StopFlag
    env: dict[str, str]
    root: Path
    data_dir: Path
    ready_timeout: float
    grace: float
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))

    def __post_init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(
        self, name: str, command: Sequence[str], overrides: Mapping[str, str]
    ) -> ManagedProcess:
        process = ManagedProcess(
            name, command, env={**self.env, **overrides}, console=self.console, cwd=str(self.root)
        )
        self.processes.append(process)
        self.console.say(f"started {name}: pid {process.pid} (process group {process.pid})")
        return process

    def start_redis(self, binary: str) -> str:
        port = free_port()
        process = self.start("redis", redis_server_command(binary, port), {})
        wait_until(
            lambda: ping(HOST, port),
            process=process,
            timeout=self.ready_timeout,
            stopping=self.stop,
        )
        return f"redis://{HOST}:{port}/0"

    def migrate(self, service: str) -> None:
        command = migration_command(sys.executable, self.root, service)
        shown = f"alembic -c services/{service}/alembic.ini upgrade head"
        self.console.say(f"migrating {service}: {shown}")
        env = {**self.env, **service_env(service, data_dir=self.data_dir, redis_url=None)}
        result = subprocess.run(  # noqa: S603 - our own alembic
            command,
            env=env,
            cwd=str(self.root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=MIGRATION_TIMEOUT_SECONDS,
            check=False,
        )
        for line in result.stdout.decode("utf-8", errors="replace").splitlines():
            self.console.line(service, line)
        if result.returncode != 0:
            raise StartupError(
                f"migrations of {service} failed (exit {result.returncode}): {shown}; "
                "see its output above"
            )

    def start_service(self, spec: ServiceSpec) -> None:
        process = self.start(spec.name, spec.command, spec.env)
        wait_until(
            lambda: http_ready(spec.ready_url),
            process=process,
            timeout=self.ready_timeout,
            stopping=self.stop,
        )
        self.console.say(f"{spec.name} is ready ({spec.ready_url})")

    def watch(self) -> int:
        """Until a signal (0) or a process dying on its own (1)."""
        while not self.stop():
            for process in self.processes:
                code = process.exited()
                if code is not None:
                    self.console.say(
                        f"{process.name} exited unexpectedly with code {code}; stopping the rest"
                    )
                    return 1
            time.sleep(0.2)
        self.console.say(f"{self.stop.signal_name}: stopping")
        return 0

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.exited() is None:
                self.console.say(f"stopping {process.name} (pid {process.pid})")
            process.stop(grace=self.grace)
        self.processes.clear()
        self.console.say("all processes stopped")


def console_line(gateway: str, console_dir: Path) -> str:
    if (console_dir / "index.html").is_file():
        return f"  console  {gateway}/console/"
    return f"  console  {gateway}/console/   (not built: make console, needs Node 20 + npm)"


def banner(console: Console, specs: Sequence[ServiceSpec], redis: str, sup: Supervisor) -> None:
    gateway = f"http://{HOST}:{sup.ports['gateway']}"
    demo = (
        "make demo   (or: uv run chassis-demo)"
        if sup.ports["gateway"] == DEFAULT_PORT_BASE
        else f"uv run chassis-demo --gateway {gateway}"
    )
    lines = [
        "the platform is up",
        f"  gateway  {gateway}   (the only public entry)",
        console_line(gateway, sup.root / "console" / "dist"),
        f"  API docs {gateway}/docs",
        *(f"  metrics  {spec.metrics_url}   ({spec.name})" for spec in specs),
        *(f"  data     {name}: {database_of(name, sup.env, sup.data_dir)}" for name in MIGRATED),
        f"  redis    {redis}",
        f"  try it   {demo}",
        "  stop     Ctrl-C",
    ]
    for line in lines:
        console.say(line)


def run(args: argparse.Namespace, console: Console, stop: StopFlag) -> int:
    env = dict(os.environ)
    root = repo_root()
    data_dir = (
        args.data_dir if args.data_dir.is_absolute() else Path.cwd() / args.data_dir
    ).resolve()
    try:
        ports = ports_from(args.port_base)
    except ValueError as exc:
        console.say(str(exc))
        return 1
    wanted = [name for name in ports if not (name == "worker" and args.no_worker)]
    taken = [f"{name} ({ports[name]})" for name in wanted if port_in_use(HOST, ports[name])]
    if taken:
        console.say(f"ports already in use: {', '.join(taken)}; is the platform already running?")
        return 1
    choice = discover_redis(env)
    if choice.source is RedisSource.MISSING:
        console.say(INSTALL_HINT)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(console, stop, env, root, data_dir, args.ready_timeout, args.grace, ports)
    try:
        if choice.source is RedisSource.START:
            redis_url = sup.start_redis(choice.server_binary or "redis-server")
            override: str | None = redis_url
            console.say(f"started its own Redis: {redis_url} (nothing saved to disk)")
        elif choice.source is RedisSource.ENV:
            redis_url = override = choice.url or ""
            console.say(f"Redis from REDIS_URL: {redis_url}")
        else:
            redis_url = choice.url or ""
            override = None
            console.say(f"Redis on {redis_url}")
        for service in MIGRATED:
            sup.migrate(service)
        specs = build_services(
            sys.executable,
            data_dir=data_dir,
            redis_url=override,
            worker=not args.no_worker,
            ports=ports,
            console_dir=root / "console" / "dist",
        )
        for spec in specs:
            sup.start_service(spec)
        banner(console, specs, redis_url, sup)
        return sup.watch()
    except (StartupError, subprocess.TimeoutExpired) as exc:
        console.say(f"start-up failed: {exc}")
        return 0 if stop() else 1
    finally:
        sup.stop_all()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv, os.environ)
    console = Console()
    stop = StopFlag()
    stop.install()
    sys.exit(run(args, console, stop))


if __name__ == "__main__":
    main()
