"""Two real server processes sharing one Redis admit the limit once, not once each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

import redis

HERE = Path(__file__).parent
LIMIT = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn_server(*, redis_url: str, log: Path) -> Iterator[str]:
    """Start the shared-limit app in its own process; stop it by PID on the way out."""
    port = free_port()
    env = {
        **os.environ,
        "RATELIMIT_TEST_REDIS_URL": redis_url,
        "RATELIMIT_TEST_LIMIT": str(LIMIT),
    }
    command = [
        sys.executable, "-m", "uvicorn", "shared_limit_app:create_app", "--factory",
        "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base_url}/health/live", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer on {base_url}: {log.read_text()}")
            time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.slow
def test_two_processes_sharing_redis_admit_the_limit_once_in_total(
    redis_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(uvicorn_server(redis_url=redis_url, log=tmp_path / "a.log"))
        second = stack.enter_context(uvicorn_server(redis_url=redis_url, log=tmp_path / "b.log"))
        # Both see the same client: 127.0.0.1 is a trusted proxy, so uvicorn takes the
        # client address from X-Forwarded-For.
        headers = {"X-Forwarded-For": "203.0.113.7"}
        with httpx.Client(headers=headers, timeout=5) as http:
            answers = [http.get(f"{(first, second)[n % 2]}/whoami") for n in range(4 * LIMIT)]

    allowed = [answer for answer in answers if answer.status_code == 200]
    assert len(allowed) == LIMIT
    assert [answer.status_code for answer in answers[LIMIT:]] == [429] * (3 * LIMIT)
    assert len({answer.text for answer in allowed}) == 2  # both processes admitted some
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("*") == [b"rl-shared:default|ip:203.0.113.7"]
