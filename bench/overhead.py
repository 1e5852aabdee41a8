"""Figure "chassis cost": the chassis request path against bare FastAPI, same endpoint.

Each variant (bench/apps.py) runs alone under uvicorn on the server core;
variants are interleaved over rounds so that machine noise hits them alike.
Every variant runs on two servers: uvicorn as the platform runs it (uvloop and
httptools, what ``--loop auto --http auto`` picks when installed) and uvicorn
on the pure-Python asyncio loop and h11 parser. A faster server makes bare
FastAPI cheaper and leaves the chassis' own cost where it was, so the ratio
falls while every request gets cheaper: both are printed (docs/adr/0016).

"chassis_full" is the trimmed stack (no rate limiting); "chassis_shipped" is what the
services run (rate limiting on Redis, multiprocess metrics, staging logs). The gap
between the two is mostly the Redis rate limiter's round trip per request (README).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

import httpx

from chassis.testing.processes import free_port, stop_process_group, uvicorn_command
from load import BENCH_DIR, SERVER_CPU, Measurement, measure, pinned

VARIANTS = (
    "bare",
    "chassis_middleware_only",
    "chassis_no_tracing",
    "chassis_full",
    "chassis_full_access_sampled",
    "chassis_full_all_sampled",
    "chassis_full_none_sampled",
    "chassis_full_rate_limited",
    "chassis_shipped",
    "chassis_shipped_local_metrics",
    "chassis_shipped_memory_limit",
    "chassis_stock_telemetry",
)
DEFAULT_VARIANTS = (
    "bare",
    "chassis_middleware_only",
    "chassis_full",
    "chassis_full_none_sampled",
    "chassis_full_all_sampled",
    "chassis_full_access_sampled",
    "chassis_shipped",
    "chassis_stock_telemetry",
)
#: Variants whose metrics run in Prometheus' multiprocess mode, as the services' images do.
MULTIPROCESS_METRICS = frozenset({"chassis_shipped", "chassis_shipped_memory_limit"})
PATH = "/items/42"
#: uvicorn's event loop and HTTP parser per server name; "uvloop" is what the platform runs.
SERVERS = {
    "uvloop": ("--loop", "uvloop", "--http", "httptools"),
    "asyncio": ("--loop", "asyncio", "--http", "h11"),
}


#: The log drains of started servers, reaped once their server has stopped.
_DRAINS: list[subprocess.Popen[bytes]] = []


def _reap_drains() -> None:
    for drain in _DRAINS:
        drain.wait(timeout=10)
    _DRAINS.clear()


def _start(variant: str, server: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if variant in MULTIPROCESS_METRICS:
        # A fresh directory per start, as the images' entrypoint empties it at every start.
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-prom-")}
    command = uvicorn_command(
        f"apps:{variant}",
        port,
        app_dir=BENCH_DIR,
        extra_args=["--no-access-log", *SERVERS[server]],
    )
    # The log lines go into a pipe that another process drains, as a container runtime's
    # log driver drains a service's stdout: writing to /dev/null would be cheaper than
    # what the services really pay per line. The drain's CPU is not counted (only the
    # server's pid is); it ends when the server does (end of file) and is reaped then.
    drain = subprocess.Popen(
        ["sh", "-c", 'exec "$0" > /dev/null', "cat"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        process = subprocess.Popen(
            pinned(SERVER_CPU, command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=drain.stdin,
            start_new_session=True,
        )
    finally:
        # The server holds the write end; once it exits, cat sees the end and exits too.
        if drain.stdin is not None:
            drain.stdin.close()
        _DRAINS.append(drain)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{variant} on {server} exited with {process.returncode}")
        try:
            if httpx.get(url + PATH, timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    stop_process_group(process, timeout=5)
    raise RuntimeError(f"{variant} on {server} did not start within 30 s")


def run(
    *,
    otlp_endpoint: str,
    duration: float,
    rounds: int,
    connections: int,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    servers: Sequence[str] = tuple(SERVERS),
    warmup: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, dict[str, list[Measurement]]]:
    """Per server, every variant measured `rounds` times, interleaved; bare always first."""
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "PYTHONPATH": str(BENCH_DIR),
    }
    chosen = ["bare", *(v for v in variants if v != "bare")]
    results: dict[str, dict[str, list[Measurement]]] = {
        server: {variant: [] for variant in chosen} for server in servers
    }
    for round_number in range(1, rounds + 1):
        for server, variant in ((s, v) for s in servers for v in chosen):
            process, url = _start(variant, server, env)
            try:
                if warmup > 0:
                    # Imports, route caches and metric children are made before timing.
                    measure(
                        url + PATH,
                        duration=warmup,
                        connections=connections,
                        server_pids=[process.pid],
                    )
                result = measure(
                    url + PATH,
                    duration=duration,
                    connections=connections,
                    server_pids=[process.pid],
                )
            finally:
                stop_process_group(process, timeout=10)
                _reap_drains()
            if result.errors:
                raise RuntimeError(f"{variant} on {server}: {result.errors} failed responses")
            results[server][variant].append(result)
            say(
                f"  overhead round {round_number} {server:7} {variant:30} "
                f"{result.requests_per_second:8.0f} "
                f"req/s  {result.cpu_us_per_request or 0:6.0f} us CPU/req"
            )
    return results
