"""The order-event latency figure: paced POSTs, each timed to its order.created on /ws/events."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg
import websockets

from load import LOAD_CPU, percentile, pin_process
from platform_launch import DEFAULT_POLL_INTERVAL, ORDER, Account, Platform, sign_up


@dataclass
class EventLatency:
    relay_mode: str
    poll_interval_seconds: float
    rate_per_second: float
    orders: int
    failed_posts: int
    #: Why POSTs failed: HTTP status, or the transport error's class name, with counts.
    failures: dict[str, int]
    received: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def event_latency(
    platform: Platform,
    *,
    rate: float,
    seconds: float,
    relay_mode: str,
    say: Callable[[str], None] = print,
) -> EventLatency:
    """Paced POSTs; time from each POST's response to its order.created on /ws/events."""
    # Not the drain of the figure before: every earlier event is out before this run starts.
    waited = wait_for_outbox_drained(platform)
    if waited >= 0.1:
        say(f"  (waited {waited:.1f} s for the outbox of the previous figure to drain)")
    account = sign_up(platform.gateway)
    # The client is the load generator: it gets the other core.
    pin_process(os.getpid(), LOAD_CPU)
    # The client's own full collections (50-90 ms over this process's heap) would be
    # counted as event latency: freeze what is alive so they walk only this run's objects.
    gc.collect()
    gc.freeze()
    values, failures = asyncio.run(
        _paced_orders(platform.gateway, account, rate=rate, seconds=seconds)
    )
    result = EventLatency(
        relay_mode=relay_mode,
        poll_interval_seconds=DEFAULT_POLL_INTERVAL,
        rate_per_second=rate,
        orders=round(rate * seconds),
        failed_posts=sum(failures.values()),
        failures=failures,
        received=len(values),
        p50_ms=round(percentile(values, 50), 2),
        p95_ms=round(percentile(values, 95), 2),
        p99_ms=round(percentile(values, 99), 2),
        max_ms=round(max(values, default=float("nan")), 2),
    )
    say(
        f"  events ({relay_label(relay_mode)}, {rate:g}/s) "
        f"{result.received}/{result.orders} received, "
        f"{result.failed_posts} POSTs failed {result.failures or ''}  "
        f"p50 {result.p50_ms:.1f}  p95 {result.p95_ms:.1f}  p99 {result.p99_ms:.1f} ms"
    )
    return result


def wait_for_outbox_drained(platform: Platform, *, timeout: float = 60.0) -> float:
    """Wait until orders has no unsent outbox row; return the seconds waited."""
    url = platform.config.orders_database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            unsent = row[0] if row is not None else 0
            waited = time.perf_counter() - started
            if unsent == 0:
                return waited
            if waited > timeout:
                raise RuntimeError(f"{unsent} outbox rows still unsent after {timeout:g} s")
            time.sleep(0.1)


async def _paced_orders(
    gateway: str, account: Account, *, rate: float, seconds: float
) -> tuple[list[float], dict[str, int]]:
    """Latency (ms) of every order.created that arrived, and why POSTs failed (with counts)."""
    answered: dict[str, float] = {}
    arrived: dict[str, float] = {}
    total = max(1, round(rate * seconds))
    ws_url = gateway.replace("http://", "ws://", 1) + "/ws/events"
    failures: Counter[str] = Counter()
    placed_all = False
    all_arrived = asyncio.Event()
    async with (
        # No keepalive pings: a busy bench client must not close its own socket.
        websockets.connect(ws_url, additional_headers=account.auth, ping_interval=None) as socket,
        # aiohttp, not httpx: the client shares its loop with the socket's reader, and
        # httpx's pool costs several times more CPU per call (bench/overload.py).
        aiohttp.ClientSession(
            base_url=gateway,
            headers=account.auth,
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=0),
            trust_env=False,
        ) as client,
    ):

        async def listen() -> None:
            async for raw in socket:
                message: dict[str, Any] = json.loads(raw)
                event = message.get("event") or {}
                if message.get("type") == "event" and event.get("type") == "order.created":
                    order_id = event.get("payload", {}).get("order", {}).get("id")
                    if order_id is not None:
                        arrived.setdefault(order_id, time.perf_counter())
                        if placed_all and answered.keys() <= arrived.keys():
                            all_arrived.set()

        async def place(at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                async with client.post(
                    "/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
                ) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1
                return
            if response.status != 201:
                failures[str(response.status)] += 1
                return
            answered[str(json.loads(body)["id"])] = time.perf_counter()

        listener = asyncio.create_task(listen())
        started = time.perf_counter() + 0.2
        await asyncio.gather(*(place(started + i / rate) for i in range(total)))
        placed_all = True
        # Events still on their way: wait up to 5 s (ten default relay passes) for the rest.
        if answered.keys() <= arrived.keys():
            all_arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_arrived.wait(), 5)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await listener
    # An event can beat the POST's response home; that is zero latency, not negative.
    latencies = [
        max(0.0, (arrived[oid] - t) * 1000) for oid, t in answered.items() if oid in arrived
    ]
    return latencies, dict(failures)


def relay_label(relay_mode: str) -> str:
    if relay_mode == "wake":
        return "relay woken by commit"
    return f"relay polls every {DEFAULT_POLL_INTERVAL:g} s"
