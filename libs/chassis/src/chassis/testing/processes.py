"""Start real server processes for tests (e2e, multi-worker) and stop them by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_process(
    factory: str,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    app_dir: str | os.PathLike[str] | None = None,
    ready_path: str = "/health/live",
    timeout: float = 30.0,
) -> Iterator[str]:
    """Run `uvicorn --factory <factory>` on a free port; yield its base URL.

    Waits until `ready_path` answers below 500; on exit sends SIGTERM to the
    process group (workers included) and SIGKILL if it has not gone in 15 s.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra_args,
    ]
    if app_dir is not None:
        command += ["--app-dir", os.fspath(app_dir)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, env={**os.environ, **(env or {})}, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early with {process.returncode}")
            try:
                if httpx.get(base_url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {base_url} did not answer")
            time.sleep(0.1)
        yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
