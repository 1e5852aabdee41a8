"""Load generation and measurement shared by every figure: wrk or a Python client, CPU pinning.

Servers go on one core and the load generator on the other (``taskset``). Next
to requests/s each measurement records the CPU the measured server processes
spent per request (from ``/proc/<pid>/stat``): on a machine shared with other
work, throughput falls with every stolen time slice while CPU per request
barely moves, so it is the steadier of the two figures.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
SERVER_CPU = 1
LOAD_CPU = 0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_SCALE_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    #: Server CPU (user + system, all measured processes) per request, in microseconds.
    cpu_us_per_request: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1


def pinned(cpu: int, command: Sequence[str]) -> list[str]:
    """`command` run on one CPU when taskset and a second core exist."""
    return ["taskset", "-c", str(cpu), *command] if can_pin() else list(command)


def pin_process(pid: int, cpu: int = SERVER_CPU) -> None:
    """Move a running process, every thread of it, onto one CPU."""
    if can_pin():
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def measure(
    url: str,
    *,
    duration: float,
    connections: int,
    server_pids: Sequence[int],
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> Measurement:
    """Load `url` for `duration` seconds with `connections` keep-alive connections."""
    before = cpu_seconds(server_pids)
    if tool() == "wrk":
        result = _wrk(url, duration, connections, headers or {}, script, script_args)
    else:
        if script is not None:
            raise RuntimeError("this measurement needs wrk (apt-get install wrk)")
        result = asyncio.run(_python_client(url, duration, connections, headers or {}))
    spent = cpu_seconds(server_pids) - before
    if result.requests:
        result.cpu_us_per_request = round(spent / result.requests * 1e6, 1)
    return result


def _wrk(  # noqa: PLR0917 - private, called once with every argument in order
    url: str,
    duration: float,
    connections: int,
    headers: dict[str, str],
    script: Path | None,
    script_args: Sequence[str],
) -> Measurement:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(
        pinned(LOAD_CPU, command),
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    latencies = {pct: float(value) * _SCALE_MS[unit] for pct, value, unit in _LATENCY.findall(out)}
    errors = sum(
        int(match)
        for match in re.findall(r"Non-2xx or 3xx responses: (\d+)", out)
        + re.findall(r"Socket errors: connect (\d+)", out)
    )
    return Measurement(
        requests_per_second=round(float(rps.group(1)), 1),
        p50_ms=round(latencies.get("50", float("nan")), 2),
        p99_ms=round(latencies.get("99", float("nan")), 2),
        requests=int(total.group(1)),
        errors=errors,
        cpu_us_per_request=None,
    )


async def _python_client(
    url: str, duration: float, connections: int, headers: dict[str, str]
) -> Measurement:
    """The fallback without wrk: one httpx client, `connections` loops; a lower bound."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code >= 400

        await asyncio.gather(*(worker() for _ in range(connections)))
    return Measurement(
        requests_per_second=round(len(latencies) / duration, 1),
        p50_ms=round(percentile(latencies, 50), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        requests=len(latencies),
        errors=errors,
        cpu_us_per_request=None,
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports so that sampled spans really leave the servers."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@contextmanager
def otlp_sink() -> Iterator[str]:
    """A throwaway OTLP/HTTP receiver; yields its endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpSink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
