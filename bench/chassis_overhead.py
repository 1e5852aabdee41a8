"""Chassis request-path cost against bare FastAPI, measured side by side in one run.

Each server runs alone on one core (``taskset``), the load generator on the
other; variants are interleaved over several rounds so machine noise hits
them alike, and the ratio of medians is reported. Needs ``wrk`` (Debian
package); without it a Python client is used and the figures are lower
bounds. Writes a JSON result under ``reports/``. Never used for assertions.

    uv run python bench/chassis_overhead.py [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPORTS = BENCH_DIR.parent / "reports"
VARIANTS = (
    "bare",
    "chassis_middleware_only",
    "chassis_no_tracing",
    "chassis_full",
    "chassis_full_rate_limited",
)
PATH = "/items/42"


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports so sampled spans really leave the process."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def _start_server(variant: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = _pinned(
        1,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"apps:{variant}",
            "--app-dir",
            str(BENCH_DIR),
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + PATH, timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"{variant} did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wrk(url: str, duration: float, connections: int) -> tuple[float, float]:
    command = _pinned(
        0,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            url + PATH,
        ],
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses from {url}")
    return rps, p99_ms


def _python_client(url: str, duration: float, connections: int) -> tuple[float, float]:
    import asyncio

    async def run() -> tuple[float, float]:
        latencies: list[float] = []
        stop_at = time.monotonic() + duration
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=url, limits=limits) as client:

            async def worker() -> None:
                while time.monotonic() < stop_at:
                    started = time.perf_counter()
                    (await client.get(PATH)).raise_for_status()
                    latencies.append((time.perf_counter() - started) * 1000)

            await asyncio.gather(*(worker() for _ in range(connections)))
        latencies.sort()
        return len(latencies) / duration, latencies[int(len(latencies) * 0.99)]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", nargs="*", choices=VARIANTS, help="variants to run (bare always)")
    args = parser.parse_args()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
        "PYTHONPATH": str(BENCH_DIR),
    }
    measure = _wrk if shutil.which("wrk") else _python_client
    chosen = ["bare", *(v for v in (args.only or VARIANTS) if v != "bare")]
    results: dict[str, list[tuple[float, float]]] = {variant: [] for variant in chosen}
    for round_number in range(1, args.rounds + 1):
        for variant in chosen:
            process, url = _start_server(variant, env)
            try:
                measure(url, 2, args.connections)  # warm-up
                results[variant].append(measure(url, args.duration, args.connections))
            finally:
                _stop(process)
            rps, p99 = results[variant][-1]
            print(f"round {round_number} {variant:28} {rps:9.0f} req/s  p99 {p99:7.2f} ms")
    sink.shutdown()

    baseline = statistics.median(rps for rps, _ in results["bare"])
    summary = {
        variant: {
            "requests_per_second": round(statistics.median(r for r, _ in runs), 1),
            "p99_ms": round(statistics.median(p for _, p in runs), 2),
            "ratio_to_bare": round(statistics.median(r for r, _ in runs) / baseline, 3),
        }
        for variant, runs in results.items()
    }
    print(f"\n{'variant':28} {'req/s':>9} {'p99 ms':>8} {'x bare':>7}")
    for variant, row in summary.items():
        print(
            f"{variant:28} {row['requests_per_second']:9.0f} {row['p99_ms']:8.2f} "
            f"{row['ratio_to_bare']:7.2f}"
        )
    REPORTS.mkdir(exist_ok=True)
    out = REPORTS / "chassis_overhead.json"
    out.write_text(
        json.dumps(
            {
                "tool": measure.__name__.lstrip("_"),
                "duration_seconds": args.duration,
                "rounds": args.rounds,
                "connections": args.connections,
                "results": summary,
            },
            indent=2,
        )
    )
    print(f"\nwritten: {out.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
