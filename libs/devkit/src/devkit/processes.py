"""Child processes in their own process groups: start, output, readiness, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from devkit.logs import Console


class ManagedProcess:
    """One child in a new session (its own process group), its output prefixed on the console."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        console: Console,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.popen = subprocess.Popen(  # noqa: S603 - the platform's own commands
            self.command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.popen.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise RuntimeError("no output pipe")
        self._pump: threading.Thread = console.pump(name, self.popen.stdout)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return self.popen.poll()

    def stop(self, *, grace: float) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; nothing of the group survives."""
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Anything the leader left behind in its group (e.g. uvicorn --workers children).
        self._signal_group(signal.SIGKILL)
        self._pump.join(timeout=2)

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)


def http_ready(url: str, *, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class StartupError(Exception):
    """A process did not become ready: it exited, timed out, or start-up was interrupted."""


def wait_until(
    ready: Callable[[], bool],
    *,
    process: ManagedProcess,
    timeout: float,
    stopping: Callable[[], bool],
    interval: float = 0.2,
) -> None:
    """Poll ``ready`` until it holds; fail if the process dies, time runs out or a stop is asked."""
    deadline = time.monotonic() + timeout
    while not ready():
        code = process.exited()
        if code is not None:
            raise StartupError(f"{process.name} exited with code {code} before it was ready")
        if stopping():
            raise StartupError(f"interrupted while waiting for {process.name}")
        if time.monotonic() > deadline:
            raise StartupError(f"{process.name} was not ready within {timeout:g} s")
        time.sleep(interval)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
