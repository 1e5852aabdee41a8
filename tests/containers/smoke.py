"""make compose-smoke: the images built and the core of docker-compose.yml up, for real, on podman.

    uv run python -m tests.containers.smoke        # what `make compose-smoke` runs

Steps, each printed with its figures as it finishes:
1. the local base image (debootstrap, cached), then every service image from the project's
   own Dockerfile with that base as PYTHON_BASE, and Postgres and Redis images from
   Debian's packages (tests/containers/images; this test only);
2. `docker compose up` of postgres, redis, the migration jobs, users, orders, gateway and
   worker through the real compose binary on podman's Docker API, every healthcheck
   driven until healthy; the observability services (collector, Jaeger, Loki, Prometheus,
   Grafana) are not started: no image of them can be had here, their configs are
   checked offline by tests/deploy;
3. `chassis-demo` against the published gateway port;
4. every app container runs as uid 10001 on a read-only root filesystem, and no secret
   (the files `make secrets` writes, mounted at /run/secrets) appears in `podman inspect`;
5. SIGTERM through `compose stop`: requests in flight at the gateway finish, and the
   worker's job in its payment step is finished, not lost;
6. everything torn down (containers, network, volume, the API socket); when a step failed,
   the last log lines of gateway, orders, users and worker are printed first (`podman logs`),
   since teardown takes the cause with it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chassis.testing.processes import free_port
from tests.containers.drain import GatewayDrain, WorkerDrain, drain_gateway, drain_worker
from tests.containers.engine import Compose, Engine, HealthDriver

ROOT = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).with_name("images")
BASE_IMAGE = "localhost/bookworm-python:3.11"
#: The console stage's Node base: BASE_IMAGE plus this machine's Node 20 (node-image.sh).
NODE_IMAGE = "localhost/bookworm-node:20"
SERVICES = ("users", "orders", "gateway", "worker")
CORE = ("postgres", "redis", "users-migrate", "orders-migrate", *SERVICES)
LOGGED = ("gateway", "orders", "users", "worker")
LEFT_OUT = ("otel-collector", "jaeger", "loki", "prometheus", "alertmanager", "grafana")
TAG = "smoke"
APP_UID = "10001"
PAYMENT_SECONDS = 4.0


def say(message: str) -> None:
    print(f"[compose-smoke] {message}", flush=True)  # noqa: T201 - progress is the output


@dataclass
class SmokeReport:
    image_sizes_mb: dict[str, float] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    healthy_after_s: dict[str, float] = field(default_factory=dict)
    migrations_exit: dict[str, int] = field(default_factory=dict)
    demo_lines: list[str] = field(default_factory=list)
    demo_exit: int | None = None
    users: dict[str, str] = field(default_factory=dict)
    read_only: dict[str, bool] = field(default_factory=dict)
    secrets_in_inspect: dict[str, list[str]] = field(default_factory=dict)
    console: str = ""
    gateway_drain: GatewayDrain | None = None
    worker_drain: WorkerDrain | None = None
    wall_seconds: float = 0.0


def env_file(directory: Path, *, gateway_port: int) -> tuple[Path, dict[str, str]]:
    """.env.example plus the smoke's knobs, and the secret files `make secrets` writes.

    Returns the env file and ``{secret file name: value}`` (searched for in `podman inspect`).
    """
    secrets_dir = directory / "secrets"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "compose-secrets.sh"), str(secrets_dir)],
        check=True,
        capture_output=True,
    )
    values = {
        path.name: path.read_text().strip()
        for path in sorted(secrets_dir.iterdir())
        if path.read_text().strip()
    }
    subnet = f"172.29.{secrets.randbelow(200) + 20}.0/24"
    lines = [
        *(ROOT / ".env.example").read_text().splitlines(),
        f"TAG={TAG}",
        f"CHASSIS_SECRETS_DIR={secrets_dir}",
        f"CHASSIS_SUBNET={subnet}",
        f"SMOKE_GATEWAY_PORT={gateway_port}",
        f"SMOKE_PAYMENT_SECONDS={PAYMENT_SECONDS}",
    ]
    path = directory / "smoke.env"
    path.write_text("\n".join(lines) + "\n")
    return path, values


def build_images(engine: Engine, report: SmokeReport) -> None:
    started = time.monotonic()
    subprocess.run(
        ["bash", str(IMAGES / "base-image.sh"), str(ROOT / ".cache" / "containers")],
        env=engine.env,
        check=True,
        capture_output=True,
    )
    report.build_seconds["base"] = round(time.monotonic() - started, 1)
    report.image_sizes_mb["base"] = round(engine.image_size(BASE_IMAGE) / 1e6, 1)
    say(f"base image {BASE_IMAGE}: {report.image_sizes_mb['base']} MB")
    started = time.monotonic()
    subprocess.run(
        ["bash", str(IMAGES / "node-image.sh")],
        env={**engine.env, "BASE_IMAGE": BASE_IMAGE, "NODE_IMAGE": NODE_IMAGE},
        check=True,
        capture_output=True,
    )
    report.build_seconds["node"] = round(time.monotonic() - started, 1)
    report.image_sizes_mb["node"] = round(engine.image_size(NODE_IMAGE) / 1e6, 1)
    say(f"node image {NODE_IMAGE} (console build stage): {report.image_sizes_mb['node']} MB")
    builds: list[tuple[str, str, list[str], Path]] = [
        (name, f"localhost/chassis/{name}:{TAG}", ["--build-arg", f"SERVICE={name}"], ROOT)
        for name in SERVICES
    ]
    builds += [
        (
            name,
            f"localhost/chassis-smoke/{name}:{version}",
            ["-f", str(IMAGES / f"{name}.Containerfile")],
            IMAGES,
        )
        for name, version in (("postgres", "15"), ("redis", "7"))
    ]
    for name, image, args, context in builds:
        started = time.monotonic()
        engine.podman(
            "build", "--format", "docker", "-q",
            "--build-arg", f"PYTHON_BASE={BASE_IMAGE}", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg", f"NODE_BASE={NODE_IMAGE}",
            *args, "-t", image, str(context),
        )  # fmt: skip
        report.build_seconds[name] = round(time.monotonic() - started, 1)
        report.image_sizes_mb[name] = round(engine.image_size(image) / 1e6, 1)
        say(f"built {image}: {report.image_sizes_mb[name]} MB in {report.build_seconds[name]} s")


def compose_up(stack: Compose, report: SmokeReport) -> None:
    say(f"compose up {' '.join(CORE)} (left out, no image here: {', '.join(LEFT_OUT)})")
    health = HealthDriver(stack)
    health.start()
    try:
        up = stack.run("up", "-d", "--no-build", "--wait", "--wait-timeout", "300", *CORE)
    finally:
        health.stop()
    report.healthy_after_s = health.healthy_after
    if up.returncode != 0:
        logs = stack.run("logs", "--no-color", "--tail", "40")
        raise RuntimeError(f"compose up failed:\n{up.stderr[-3000:]}\n{logs.stdout[-6000:]}")
    for job in ("users-migrate", "orders-migrate"):
        state = stack.engine.inspect(stack.container_of(job))["State"]
        report.migrations_exit[job] = int(state["ExitCode"])
    for name, seconds in sorted(health.healthy_after.items(), key=lambda item: item[1]):
        say(f"healthy: {name} after {seconds} s")
    say(f"migrations exited {report.migrations_exit}")


def run_demo(gateway: str, report: SmokeReport) -> None:
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "chassis-demo"), "--gateway", gateway],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    report.demo_exit = demo.returncode
    report.demo_lines = [line for line in demo.stdout.splitlines() if line.strip()]
    for line in report.demo_lines:
        say(f"demo | {line}")
    if demo.returncode != 0:
        say(f"demo failed ({demo.returncode}): {demo.stderr[-2000:]}")


def check_console(gateway: str, report: SmokeReport) -> None:
    """The gateway image serves the console its Node stage built: the page and every asset."""
    page = httpx.get(f"{gateway}/console/", timeout=10)
    assets = re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', page.text)
    served = [httpx.get(gateway + asset, timeout=10).status_code for asset in assets]
    ok = (
        page.status_code == 200
        and "<title>chassis console</title>" in page.text
        and bool(assets)
        and all(status == 200 for status in served)
    )
    report.console = (
        f"{'ok' if ok else 'FAILED'}: /console/ {page.status_code}, "
        f"{sum(status == 200 for status in served)}/{len(assets)} assets 200"
    )
    say(f"console {report.console}")


def check_containers(stack: Compose, secret_values: dict[str, str], report: SmokeReport) -> None:
    for service in SERVICES:
        name = stack.container_of(service)
        report.users[service] = stack.engine.podman("exec", name, "id", "-u").strip()
        inspected: dict[str, Any] = stack.engine.inspect(name)
        report.read_only[service] = bool(inspected["HostConfig"]["ReadonlyRootfs"])
    for name in stack.containers():
        text = stack.engine.podman("inspect", name)
        leaked = sorted(key for key, value in secret_values.items() if value in text)
        if leaked:
            report.secrets_in_inspect[name] = leaked
    say(f"uid per app container: {report.users}; read-only root fs: {report.read_only}")
    say(f"secrets visible in podman inspect: {report.secrets_in_inspect or 'none'}")


def dump_logs(stack: Compose, *, tail: int = 60) -> None:
    """The app containers' last log lines, printed before teardown removes them.

    A failed step (a 5xx in the demo, a drain that raised) is otherwise explained only by
    its symptom: the cause (a JWKS fetch refused, a dependency down) is in these logs.
    """
    for service in LOGGED:
        try:
            name = stack.container_of(service)
        except RuntimeError:
            say(f"{service} log | (no container)")
            continue
        result = subprocess.run(
            ["podman", "logs", "--tail", str(tail), name],
            env=stack.engine.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # podman logs writes the container's stderr to its own stderr: both are the log.
        for line in (result.stdout + result.stderr).splitlines():
            say(f"{service} log | {line[-400:]}")


def tear_down(stack: Compose) -> None:
    down = stack.run("down", "-v", "--remove-orphans", "--timeout", "30")
    say(f"compose down -v: exit {down.returncode}")


def run_smoke() -> SmokeReport:
    report = SmokeReport()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="compose-smoke-") as tmp:
        workdir = Path(tmp)
        engine = Engine(workdir, say)
        build_images(engine, report)
        gateway_port = free_port()
        env_path, secret_values = env_file(workdir, gateway_port=gateway_port)
        engine.start_api()
        stack = Compose(
            engine,
            project=f"chassis-smoke-{secrets.token_hex(3)}",
            files=[ROOT / "docker-compose.yml", Path(__file__).with_name("compose.smoke.yml")],
            env_file=env_path,
        )
        dumped = False
        try:
            compose_up(stack, report)
            gateway = f"http://127.0.0.1:{gateway_port}"
            run_demo(gateway, report)
            if report.demo_exit != 0:
                # Now, while the containers still hold the cause (the steps after it may
                # fail on the same one, or go on and bury it).
                dump_logs(stack)
                dumped = True
            check_console(gateway, report)
            check_containers(stack, secret_values, report)
            report.worker_drain = asyncio.run(drain_worker(stack, gateway, say))
            report.gateway_drain = asyncio.run(drain_gateway(stack, gateway, say))
            if failed(report) and not dumped:
                dump_logs(stack)
        except BaseException:
            if not dumped:
                dump_logs(stack)
            raise
        finally:
            tear_down(stack)
            engine.stop_api()
    report.wall_seconds = round(time.monotonic() - started, 1)
    say(f"wall time {report.wall_seconds} s")
    return report


def failed(report: SmokeReport) -> bool:
    return (
        report.demo_exit != 0
        or not report.console.startswith("ok")
        or bool(report.secrets_in_inspect)
        or report.gateway_drain is None
        or bool(report.gateway_drain.dropped_in_flight)
        or report.worker_drain is None
        or report.worker_drain.status_after_restart != "fulfilled"
    )


if __name__ == "__main__":
    sys.exit(1 if failed(run_smoke()) else 0)
