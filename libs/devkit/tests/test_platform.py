"""`make dev` for real: the supervisor, the whole platform, the demo against it, SIGTERM, no orphan.

Needs the fixed ports 8000-8003 free (skipped otherwise) and Redis; uses
Redis database 13 (``REDIS_URL``) and its own temporary data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devkit.commands import HOST, PORTS
from devkit.processes import http_ready, port_in_use

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("CHASSIS_DEV_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
READY_DEADLINE_SECONDS = 120.0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def group_members(pgids: set[int]) -> set[int]:
    """Every live process whose process group is one of ``pgids`` (from /proc)."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in pgids:
                members.add(int(entry.name))
    return members


@pytest.fixture
def empty_redis_db() -> Iterator[None]:
    """The platform's Redis database, empty before and after (rate-limit windows, queues)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
        yield
        client.flushdb()
    finally:
        client.close()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("empty_redis_db")
def test_make_dev_runs_the_platform_the_demo_passes_and_sigterm_leaves_nothing(
    tmp_path: Path,
) -> None:
    taken = [f"{port} ({name})" for name, port in PORTS.items() if port_in_use(HOST, port)]
    if taken:
        pytest.skip(f"the fixed ports of `make dev` are in use: {', '.join(taken)}")
    log_path = tmp_path / "dev.log"
    env = {**os.environ, "REDIS_URL": REDIS_URL, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "devkit.dev", "--data-dir", str(tmp_path / "data")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        urls = [f"http://{HOST}:{port}/health/ready" for port in PORTS.values()]
        while not all(http_ready(url) for url in urls):
            assert supervisor.poll() is None, f"chassis-dev exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{log_path.read_text()}"
            time.sleep(0.5)
        deadline = time.monotonic() + 10
        while "the platform is up" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        output = log_path.read_text()
        started = {int(pid) for pid in re.findall(r"started \w+: pid (\d+)", output)}
        assert len(started) == 4, output
        assert "http://127.0.0.1:8000/docs" in output
        assert "make demo" in output
        assert "SQLite " + str(tmp_path / "data" / "users.sqlite3") in output
        # Whatever else those processes started lives in their process groups.
        started |= group_members(started)

        demo = subprocess.run(
            [sys.executable, "-m", "devkit.demo", "--timeout", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        for shown in ("order.created", "order.confirmed", "order.fulfilled", "a replay"):
            assert shown in demo.stdout
        assert demo.stdout.count("order.fulfilled") == 2
        assert "/api/v1/me/overview" in demo.stdout

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=120) == 0
        output = log_path.read_text()
        assert "SIGTERM: stopping" in output
        assert "all processes stopped" in output
        left = sorted(pid for pid in started if alive(pid))
        assert left == [], f"processes left running: {left}"
        assert group_members(started) == set()
    finally:
        for pid in [supervisor.pid, *started]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.wait(timeout=10)
