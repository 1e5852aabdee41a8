"""Overload then recover: writes at twice the measured capacity, then at once at half of it.

The capacity is what a closed loop of `connections` clients gets through the
gateway (POST /api/v1/orders). The overload is open-loop: orders are sent on a
fixed schedule whatever the answers, as independent callers do, each with a
client timeout, so an unanswered one is a failure and not a slower sender. The
run at half capacity starts the moment the overload's schedule ends; issue 15's
target is that none of its POSTs fails. Everything stays on 127.0.0.1 and is
bounded in time (each run's length, plus the client timeout for stragglers).

The callers are one aiohttp session: its connector queues a caller waiting for
a connection in O(1). httpx's pool rescans every queued request against every
connection each time one finishes, which at 2x capacity (thousands queued, 512
connections) took most of the load generator's core: its event loop fell tens
of seconds behind its own schedule, and the failures it reported (PoolTimeout,
minute-long "latencies") were its own.

A failed POST is reported by why it failed: for a 503, whether a process shed it
(``X-Load-Shed``), the gateway's breaker for orders refused it (circuit open) or
something else did, so the report says which layer turned callers away.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import httpx

from chassis.overload import SHED_HEADER
from platform_launch import ORDER, Account, Platform, sign_up

#: A caller's patience: what the load tests' SLO allows a write, and then some.
CLIENT_TIMEOUT_SECONDS = 5.0
#: Open-loop callers in flight at most; past it the sender, not the server, would be the limit.
MAX_IN_FLIGHT = 512


@dataclass
class PacedRun:
    rate: float
    seconds: float
    sent: int = 0
    created: int = 0
    #: Non-201 answers by status, and transport errors by kind.
    failures: dict[str, int] = field(default_factory=dict)
    p99_ms: float | None = None
    #: When, in seconds after the run's first send, its failed requests had been sent.
    failed_sent_at: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        times = sorted(data.pop("failed_sent_at"))
        # Where in the run failures fall (the overload's tail, or all along), not each one.
        data["failed_sent_between_s"] = [times[0], times[-1]] if times else None
        return {**data, "failed": self.failed}


def overload_then_recover(
    platform: Platform,
    *,
    capacity_seconds: float,
    overload_seconds: float,
    recover_seconds: float,
    connections: int,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    account = sign_up(platform.gateway)
    capacity = asyncio.run(_capacity(platform.gateway, account, capacity_seconds, connections))
    say(f"  capacity {capacity:8.0f} orders/s (closed loop, {connections} connections)")
    overload, recover = asyncio.run(
        _overload_then_recover(
            platform.gateway, account, capacity, overload_seconds, recover_seconds
        )
    )
    say(
        f"  2x  {overload.rate:6.0f}/s for {overload.seconds:g} s: {overload.created} created,"
        f" failed {overload.failed} {overload.failures or ''}"
    )
    say(
        f"  0.5x {recover.rate:5.0f}/s right after: {recover.created} created,"
        f" failed {recover.failed} {recover.failures or ''} (target 0), p99 {recover.p99_ms} ms"
        + (
            f", failures sent {min(recover.failed_sent_at):.1f}-{max(recover.failed_sent_at):.1f}"
            " s into it"
            if recover.failed_sent_at
            else ""
        )
    )
    shed = {name: _shed_counts(platform.url(name)) for name in ("gateway", "orders")}
    say(f"  shed by process and reason (both runs): {shed}")
    return {
        "capacity_per_second": round(capacity, 1),
        "overload": overload.as_dict(),
        "recover": recover.as_dict(),
        "shed": shed,
    }


def _shed_counts(base_url: str) -> dict[str, float]:
    """``http_requests_shed_total`` by reason, from the process's own /metrics."""
    text = httpx.get(base_url + "/metrics", timeout=10, trust_env=False).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("http_requests_shed_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = counts.get(reason, 0.0) + float(value)
    return counts


def _session(account: Account) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers=account.auth,
        # A caller's whole patience: waiting for a connection, connecting and the answer.
        timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS),
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        trust_env=False,
    )


async def _post(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """The answer's status and, for a failure, why (`_failure_kind`)."""
    async with session.post(
        url, json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
    ) as response:
        if response.status == 201:
            await response.read()
            return 201, ""
        body = await response.text()
        return response.status, _failure_kind(response.status, response.headers, body)


def _failure_kind(status: int, headers: Any, body: str) -> str:
    if status != 503:
        return str(status)
    shed = headers.get(SHED_HEADER)
    if shed:
        return f"503 shed ({shed})"
    if "circuit open" in body:
        return "503 circuit open"
    return "503 upstream unavailable" if "Upstream" in body else "503"


async def _capacity(gateway: str, account: Account, seconds: float, connections: int) -> float:
    url = gateway + "/api/v1/orders"
    created = 0
    async with _session(account) as session:
        until = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal created
            while time.perf_counter() < until:
                if (await _post(session, url))[0] == 201:
                    created += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        return created / (time.perf_counter() - started)


async def _overload_then_recover(
    gateway: str, account: Account, capacity: float, overload_s: float, recover_s: float
) -> tuple[PacedRun, PacedRun]:
    url = gateway + "/api/v1/orders"
    overload = PacedRun(rate=2 * capacity, seconds=overload_s)
    recover = PacedRun(rate=0.5 * capacity, seconds=recover_s)
    async with _session(account) as session:
        begins = time.perf_counter() + 0.2
        first = _paced(session, url, overload, begins)
        # The second run's schedule starts where the first one's ends, whatever is in flight.
        second = _paced(session, url, recover, begins + overload_s)
        await asyncio.gather(first, second)
    return overload, recover


async def _paced(session: aiohttp.ClientSession, url: str, run: PacedRun, begins: float) -> None:
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    total = max(1, round(run.rate * run.seconds))

    async def place(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        sent = time.perf_counter()
        try:
            status, kind = await _post(session, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures[type(exc).__name__] += 1
            run.failed_sent_at.append(round(sent - begins, 2))
            return
        if status == 201:
            run.created += 1
            latencies.append((time.perf_counter() - sent) * 1000)
        else:
            failures[kind] += 1
            run.failed_sent_at.append(round(sent - begins, 2))

    run.sent = total
    await asyncio.gather(*(place(begins + i / run.rate) for i in range(total)))
    run.failures = dict(failures)
    if latencies:
        latencies.sort()
        run.p99_ms = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
