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
from typing import IO

import httpx


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1.

    The sockets stay bound until all are chosen: one at a time, the kernel may
    hand out a port it just took back, and two services of one test platform
    got the same port (the second failed to bind, and its readiness check
    reached the first).
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def service_process(
    command: Sequence[str],
    *,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    stop_timeout: float = 15.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group until `ready_url` answers below 500.

    Yields the process; on exit sends SIGTERM to the group (workers included)
    and SIGKILL if it has not gone in `stop_timeout` seconds.
    """
    process = start_process(command, ready_url=ready_url, env=env, timeout=timeout)
    try:
        yield process
    finally:
        stop_process_group(process, timeout=stop_timeout)


def start_process(
    command: Sequence[str],
    *,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    output: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group and wait until `ready_url` answers below 500.

    The caller owns the process (stop it with `stop_process_group`); it is
    stopped here only when it does not become ready. With `output` (a file open
    for writing), stdout and stderr both go there instead of the test's own.
    """
    process = subprocess.Popen(  # noqa: S603 - the caller's own command
        list(command),
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    try:
        wait_until_ready(process, ready_url, timeout=timeout)
    except BaseException:
        stop_process_group(process, timeout=5)
        raise
    return process


def wait_until_ready(process: subprocess.Popen[bytes], ready_url: str, *, timeout: float) -> None:
    """Poll `ready_url` until it answers below 500; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early with {process.returncode}")
        try:
            if httpx.get(ready_url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ready_url} did not answer within {timeout:g}s")
        time.sleep(0.1)


def stop_process_group(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it if it outlives `timeout`."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def uvicorn_command(
    factory: str,
    port: int,
    *,
    app_dir: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line of `uvicorn --factory <factory>` on 127.0.0.1:`port`, warnings only."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        *extra_args,
    ]  # fmt: skip
    if app_dir is not None:
        command += ["--app-dir", os.fspath(app_dir)]
    return command


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
    """Run `uvicorn --factory <factory>` on a free port; yield its base URL."""
    port = free_port()
    command = uvicorn_command(factory, port, app_dir=app_dir, extra_args=extra_args)
    base_url = f"http://127.0.0.1:{port}"
    with service_process(command, ready_url=base_url + ready_path, env=env, timeout=timeout):
        yield base_url
