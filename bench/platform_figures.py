"""Figures that need the platform: gateway cost, writes, and order-event latency.

The platform itself (databases, processes, accounts) is launched by platform_launch.py;
the event-latency figure lives in event_latency.py. Both are re-exported here, so that
bench/run.py drives every platform figure through this one module.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from chassis.settings import UpstreamSettings
from chassis.testing.processes import free_port, start_process, stop_process_group
from event_latency import EventLatency, event_latency, relay_label, wait_for_outbox_drained
from load import Measurement, measure, pin_process, tool
from platform_launch import (
    DEFAULT_POLL_INTERVAL,
    ORDER,
    PASSWORD,
    RELAY_MODES,
    ROOT,
    UNLIMITED,
    Account,
    Platform,
    admin_postgres_url,
    bench_databases,
    create_order,
    redis_url,
    restart_orders,
    running_platform,
    sign_up,
)
from write_cost import cpu_per_order

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TRANSPORT",
    "JWKS_PATH",
    "ORDER",
    "PASSWORD",
    "RELAY_MODES",
    "ROOT",
    "TRANSPORTS",
    "UNLIMITED",
    "Account",
    "EventLatency",
    "admin_postgres_url",
    "bench_databases",
    "create_order",
    "event_latency",
    "gateway_cost",
    "median_of",
    "redis_url",
    "relay_label",
    "restart_orders",
    "running_platform",
    "sign_up",
    "wait_for_outbox_drained",
    "writes",
]

JWKS_PATH = "/.well-known/jwks.json"
#: Upstream transports the gateway figure compares (chassis UpstreamSettings.transport).
TRANSPORTS = ("aiohttp", "httpx")
#: What the platform's gateway runs with: the chassis default (UpstreamSettings.transport).
DEFAULT_TRANSPORT = UpstreamSettings.model_fields["transport"].default


# --- gateway cost -------------------------------------------------------------------------


def gateway_cost(
    platform: Platform,
    *,
    duration: float,
    rounds: int,
    connections: int,
    transports: Sequence[str] = TRANSPORTS,
    warmup: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, list[Measurement]]:
    """The same request straight to the upstream and through the gateway, two routes.

    ``order``: GET one order with a valid token (verified by both gateway and
    orders, read from Postgres), the representative proxied call. ``jwks``: the
    public GET /.well-known/jwks.json on users, a cheap upstream answer, so that
    the gateway's own cost shows. The platform's gateway runs with its default
    transport; one more gateway process per other transport runs beside it,
    pinned to the same core, so that transports are compared in the same rounds.
    """
    account = sign_up(platform.gateway)
    order_id = create_order(platform.gateway, account)
    paths = {"order": (f"/api/v1/orders/{order_id}", "orders"), "jwks": (JWKS_PATH, "users")}
    with contextlib.ExitStack() as stack:
        gateways = {
            transport: stack.enter_context(_extra_gateway(platform, transport))
            if transport != DEFAULT_TRANSPORT
            else (platform.gateway, platform.process("gateway").pid)
            for transport in transports
        }
        targets: dict[str, tuple[str, list[int]]] = {}
        for route, (path, upstream) in paths.items():
            upstream_pid = platform.process(upstream).pid
            targets[f"{route}_direct"] = (platform.url(upstream) + path, [upstream_pid])
            for transport, (base, pid) in gateways.items():
                targets[f"{route}_via_gateway_{transport}"] = (base + path, [upstream_pid, pid])
        results: dict[str, list[Measurement]] = {name: [] for name in targets}
        for round_number in range(1, rounds + 1):
            for name, (url, pids) in targets.items():
                if round_number == 1 and warmup > 0:
                    # Warm-up: connection pools, JWKS cache, route and metric caches.
                    measure(
                        url,
                        duration=warmup,
                        connections=connections,
                        server_pids=pids,
                        headers=account.auth,
                    )
                result = measure(
                    url,
                    duration=duration,
                    connections=connections,
                    server_pids=pids,
                    headers=account.auth,
                )
                if result.errors:
                    raise RuntimeError(f"{name}: {result.errors} failed responses from {url}")
                results[name].append(result)
                cpu = result.cpu_us_per_request or 0
                say(
                    f"  gateway round {round_number} {name:28} "
                    f"{result.requests_per_second:7.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
                    f"{cpu:6.0f} us CPU/req"
                )
    return results


@contextlib.contextmanager
def _extra_gateway(platform: Platform, transport: str) -> Iterator[tuple[str, int]]:
    """A second gateway, configured as the platform's but for its upstreams' transport."""
    port = free_port()
    env = {
        "PYTHONUNBUFFERED": "1",
        **platform.config.env,
        "GATEWAY_REDIS__URL": platform.config.redis_url,
        "GATEWAY_AUTH__JWKS_URL": platform.users + JWKS_PATH,
        "GATEWAY_UPSTREAMS__USERS__BASE_URL": platform.users,
        "GATEWAY_UPSTREAMS__ORDERS__BASE_URL": platform.orders,
        "GATEWAY_UPSTREAMS__USERS__TRANSPORT": transport,
        "GATEWAY_UPSTREAMS__ORDERS__TRANSPORT": transport,
        **platform.config.service_env.get("gateway", {}),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log_dir = platform.config.log_dir or Path(tempfile.gettempdir())
    with (log_dir / f"gateway-{transport}.log").open("ab") as output:
        process = start_process(
            command, ready_url=url + "/health/ready", env=env, timeout=60, output=output
        )
        try:
            pin_process(process.pid)
            yield url, process.pid
        finally:
            stop_process_group(process, timeout=20)


# --- writes -------------------------------------------------------------------------------

_POST_SCRIPT = """
-- One POST /api/v1/orders per request, each with its own Idempotency-Key.
local prefix = "bench"
local counter = 0
local body = '%s'

function init(args)
  prefix = args[1] or prefix
end

function request()
  counter = counter + 1
  -- wrk.format replaces wrk.headers (the -H ones) when given a table: copy them in.
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  return wrk.format("POST", nil, headers, body)
end
"""


def writes(
    platform: Platform,
    *,
    duration: float,
    connections: int,
    work_dir: Path,
    warmup: float = 1.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """POST /api/v1/orders through the gateway, Postgres and the outbox behind it.

    Then the same load again with the worker running, for the CPU an order costs every
    process until it is fulfilled (bench/write_cost.py).
    """
    if tool() != "wrk":
        raise RuntimeError("the writes figure needs wrk (apt-get install wrk)")
    account = sign_up(platform.gateway)
    script = work_dir / "post_order.lua"
    script.write_text(_POST_SCRIPT % json.dumps(ORDER))
    headers = {**account.auth, "Content-Type": "application/json"}
    pids = [platform.process("orders").pid, platform.process("gateway").pid]
    url = platform.gateway + "/api/v1/orders"
    if warmup > 0:
        measure(
            url,
            duration=warmup,
            connections=connections,
            server_pids=pids,
            headers=headers,
            script=script,
            script_args=[f"warm-{uuid.uuid4().hex[:8]}"],
        )
    result = measure(
        url,
        duration=duration,
        connections=connections,
        server_pids=pids,
        headers=headers,
        script=script,
        script_args=[f"run-{uuid.uuid4().hex[:8]}"],
    )
    if result.errors:
        raise RuntimeError(f"writes: {result.errors} failed responses")
    say(
        f"  writes {result.requests_per_second:8.0f} req/s  p99 {result.p99_ms:7.2f} ms"
        f"  {result.cpu_us_per_request or 0:6.0f} us CPU/req (gateway + orders)"
    )
    cost = cpu_per_order(
        platform,
        url=url,
        headers=headers,
        script=script,
        duration=duration,
        connections=connections,
        say=say,
    )
    return {**result.as_dict(), "cost": cost}


def median_of(runs: list[Measurement]) -> dict[str, float | None]:
    """Per-field medians over rounds."""
    cpu = [run.cpu_us_per_request for run in runs if run.cpu_us_per_request is not None]
    return {
        "requests_per_second": round(statistics.median(run.requests_per_second for run in runs), 1),
        "p50_ms": round(statistics.median(run.p50_ms for run in runs), 2),
        "p99_ms": round(statistics.median(run.p99_ms for run in runs), 2),
        "cpu_us_per_request": round(statistics.median(cpu), 1) if cpu else None,
    }
