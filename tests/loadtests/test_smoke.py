"""The CI load smoke: the journey for 20 s against the platform as real processes, gates on.

Locust runs as a subprocess (it monkey-patches the interpreter with gevent), exactly
as ``make loadtest-smoke`` runs it. The services keep their default rate limits:
six users pacing themselves like people stay within them, so a 429 here is a
failure, as it would be for real clients. Passwords are hashed with OWASP's minimum
argon2id profile (19 MiB, 2 passes, 1 lane) instead of the default 64 MiB x 3 x 4:
the smoke checks the request path under concurrency on a 2-core machine that also
runs CI's other work, not the hash's deliberate cost (the capacity report measures
that, with the defaults). A second, tiny run with an impossible p95 proves that a
breached SLO is what makes Locust exit non-zero.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from chassis.testing.plugin import redis_test_url
from loadtests import endpoints
from tests.support.platform import PlatformConfig, migrate, running_platform

ROOT = Path(__file__).resolve().parents[2]
LOADTEST_REDIS_DB = int(os.environ.get("CHASSIS_LOADTEST_REDIS_DB", "12"))

SMOKE_PASSWORD_HASHING = {
    "USERS_PASSWORDS__TIME_COST": "2",
    "USERS_PASSWORDS__MEMORY_COST_KIB": "19456",
    "USERS_PASSWORDS__PARALLELISM": "1",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(
    postgres_database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    users_db = postgres_database_factory("users_loadtest")
    orders_db = postgres_database_factory("orders_loadtest")
    migrate(users_database_url=users_db, orders_database_url=orders_db)
    redis_url = redis_test_url(LOADTEST_REDIS_DB)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    config = PlatformConfig(
        users_database_url=users_db,
        orders_database_url=orders_db,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("loadtest-data"),
        service_env={"users": SMOKE_PASSWORD_HASHING},
    )
    with running_platform(config) as platform:
        yield platform.gateway


def run_locust(gateway: str, reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.run",
            "--host",
            gateway,
            "--reports",
            str(reports),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def only_report(reports: Path) -> Path:
    (directory,) = reports.iterdir()
    return directory


def stats_rows(directory: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (directory / "stats_stats.csv").open(newline="") as file:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}


def test_the_journey_smoke_holds_every_slo_without_a_failure(gateway: str, tmp_path: Path) -> None:
    result = run_locust(gateway, tmp_path, "--smoke")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SLO gate: every objective holds" in result.stdout

    directory = only_report(tmp_path)
    assert directory.name.startswith("smoke-")
    rows = stats_rows(directory)
    total = rows[("", "Aggregated")]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, (directory / "stats_failures.csv").read_text()
    measured = {
        endpoints.group_of(method, name)
        for (method, name), row in rows.items()
        if int(row["Request Count"]) > 0
    }
    # Events are 5 % of actions: a 20-s run almost always has some, but need not.
    assert {"auth", "profile", "orders-read", "orders-write"} <= measured
    assert (directory / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert (directory / "stats_stats_history.csv").is_file()
    assert "every objective holds" in (directory / "stats_slo.md").read_text()


def test_an_slo_breach_makes_the_run_exit_non_zero(gateway: str, tmp_path: Path) -> None:
    result = run_locust(
        gateway,
        tmp_path,
        "--users",
        "1",
        "--run-time",
        "5s",
        "--name",
        "breach",
        "--",
        "--slo",
        "*.p95_ms=0",
        # Locust's own rule would exit 0 even on failures: a 1 can only be the gate's.
        "--exit-code-on-error",
        "0",
        # The user finishes what it started (sign-up and login on a busy machine can
        # outlast the run): its requests are measured rather than cut off.
        "--stop-timeout",
        "30",
    )
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 1, output
    assert "BREACH: p95_ms" in result.stdout, output
    assert "breach(es), exit code 1" in result.stdout, output
    total = stats_rows(only_report(tmp_path))[("", "Aggregated")]
    assert int(total["Request Count"]) > 0
