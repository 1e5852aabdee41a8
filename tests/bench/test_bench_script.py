"""`make bench` end to end at a tiny duration: the platform figures against real processes.

Checks the shape of the JSON report and that each figure measured something;
never the figures themselves (throughput is not a test assertion).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chassis.testing.plugin import redis_test_url

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = int(os.environ.get("CHASSIS_TEST_REDIS_DB", "15"))


@pytest.mark.slow
def test_bench_runs_every_figure_and_writes_its_report(tmp_path: Path) -> None:
    # The writes figure needs wrk's Lua scripting; without wrk the others still run. One
    # transport (the default, the platform's own gateway) and no chassis-cost figure (five
    # uvicorn starts, the same measure() as here) keep the run inside its CI budget.
    figures = ["gateway", "events", "overload", *(["writes"] if shutil.which("wrk") else [])]
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/run.py"),
            "--only",
            *figures,
            "--duration",
            "1",
            "--rounds",
            "1",
            "--warmup",
            "0",
            "--connections",
            "4",
            "--transports",
            "aiohttp",
            "--event-rates",
            "20",
            "--event-seconds",
            "1",
            "--relay-modes",
            "wake",
            "--overload-seconds",
            "1",
            "--recover-seconds",
            "1",
            "--output",
            str(out),
        ],
        env={**os.environ, "BENCH_REDIS_URL": redis_test_url(REDIS_DB)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())

    assert "overhead" not in report["figures"]
    assert report["tool"] in {"wrk", "python"}

    gateway = report["figures"]["gateway"]
    assert set(gateway) == {"order", "jwks"}
    for route in gateway.values():
        assert set(route) == {"direct", "gateway_aiohttp"}
        assert route["gateway_aiohttp"]["requests_per_second"] > 0
        assert len(route["gateway_aiohttp"]["rounds"]) == 1

    overload = report["figures"]["overload"]
    assert overload["capacity_per_second"] > 0
    for run in ("overload", "recover"):
        assert overload[run]["sent"] > 0
        assert overload[run]["created"] + overload[run]["failed"] == overload[run]["sent"]

    if "writes" in figures:
        writes = report["figures"]["writes"]
        assert writes["requests"] > 0
        assert writes["errors"] == 0
        cost = writes["cost"]
        assert cost["orders"] > 0
        # Every process an order touches was counted, and it cost each of them something.
        by_process = cost["cpu_ms_per_order_by_process"]
        assert {"gateway", "users", "orders", "worker", "postgres"} <= set(by_process)
        assert all(by_process[name] > 0 for name in ("gateway", "orders", "worker", "postgres"))
        assert cost["cpu_ms_per_order"] == pytest.approx(sum(by_process.values()), abs=0.01)
        assert "writes: CPU per order, every process" in completed.stdout

    (events,) = report["figures"]["events"]["runs"]
    assert events["relay_mode"] == "wake"
    assert events["failed_posts"] == 0
    assert events["received"] == events["orders"] == 20
    assert not math.isnan(events["p99_ms"])
    # The table names every figure.
    assert "gateway order: gateway_aiohttp" in completed.stdout
    assert "events: 20/s, woken by commit" in completed.stdout
