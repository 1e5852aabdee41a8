"""The fault suite's scenario list, the settings it runs with, and docs/reliability.md.

Each scenario test records what it measured in the session's `Reliability`
collector; when every scenario of `SCENARIOS` ran and passed in one session,
the suite rewrites docs/reliability.md from those figures (see conftest.py).
The promises quote `SETTINGS`, the values the platform actually runs with, so
the document cannot claim a deadline the suite did not use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.figures import Figures, describe

ROOT = Path(__file__).resolve().parents[2]
REPORT_PATH = ROOT / "docs" / "reliability.md"

#: The short deadlines, thresholds and TTLs the suite's platform runs with (seconds unless named).
SETTINGS: dict[str, float] = {
    "redis_outage": 10.0,
    # Longer than the worker's old Redis retry budget (35 tries, about 65 s of backoff).
    "redis_blackhole": 70.0,
    "redis_socket_timeout": 0.5,
    "orders_request_timeout": 3.0,
    "db_connect_timeout": 1.0,
    "db_pool_timeout": 1.0,
    "db_statement_timeout_ms": 1000,
    "db_pool_size": 5,
    "db_max_overflow": 2,
    "gateway_orders_deadline": 1.0,
    "breaker_threshold": 3,
    "breaker_open": 2.0,
    "worker_breaker_open": 2.0,
    "orders_added_latency": 2.0,
    "jwks_ttl": 1.0,
    "drain": 2.0,
    "graceful_timeout": 10.0,
    "fulfil_timeout": 3.0,
    "outbox_max_backoff": 1.0,
    "replay_margin": 30.0,
}


def _s(name: str) -> str:
    return f"{SETTINGS[name]:g}"


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    promise: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "redis-down",
        f"Redis down {_s('redis_outage')} s while orders are placed",
        "The gateway stays live and ready (in the load balancer) while its readiness names "
        "Redis; every order is accepted (rate limiting fails open, "
        "`RATE_LIMIT__FAIL_OPEN=true`); after Redis returns, "
        "every order's `order.created`, `order.confirmed` and `order.fulfilled` reach a "
        "WebSocket opened before the outage: orders in the database = events received, "
        f"zero lost (Redis socket timeout {_s('redis_socket_timeout')} s, outbox backoff "
        f"≤ {_s('outbox_max_backoff')} s, subscriber replay margin {_s('replay_margin')} s).",
    ),
    Scenario(
        "postgres-down",
        "Postgres down (orders' database)",
        "orders answers 503 problem+json within its request timeout "
        f"({_s('orders_request_timeout')} s; connect {_s('db_connect_timeout')} s, pool "
        f"{_s('db_pool_timeout')} s, statement {_s('db_statement_timeout_ms')} ms), never "
        "hangs; when Postgres returns it recovers by itself (same process) and a burst "
        f"wider than its pool ({_s('db_pool_size')} + {_s('db_max_overflow')}) succeeds.",
    ),
    Scenario(
        "orders-slow",
        f"orders slow ({_s('orders_added_latency')} s added latency)",
        f"The gateway answers 504 within its deadline ({_s('gateway_orders_deadline')} s); "
        f"after {_s('breaker_threshold')} failures its breaker opens and calls fail fast "
        f"(503, well under the deadline); after {_s('breaker_open')} s it half-opens and "
        "closes once orders is healthy again.",
    ),
    Scenario(
        "jwks-issuer-down",
        "users (the JWKS issuer) down",
        "The gateway and orders keep accepting valid tokens from their cached key set "
        f"(TTL {_s('jwks_ttl')} s, then served stale); a token with an unknown `kid` is "
        "refused with 401 problem+json, never 500.",
    ),
    Scenario(
        "worker-killed",
        "worker SIGKILLed mid-job",
        "After a restart the job runs again (arq's in-progress lock lapses after the job "
        f"timeout {_s('fulfil_timeout')} s + 10 s) and the order reaches `fulfilled` once "
        "in effect: one `order.confirmed` and one `order.fulfilled` event, every order "
        "placed around the kill fulfilled.",
    ),
    Scenario(
        "sigterm-drain",
        "SIGTERM under load to users, orders, gateway and worker",
        f"Readiness turns 503 first (drain {_s('drain')} s), in-flight requests complete "
        f"(graceful timeout {_s('graceful_timeout')} s), no client sees a 5xx or a reset "
        "for a request that was accepted; the worker's job in flight is not lost.",
    ),
    Scenario(
        "duplicate-delivery",
        "The same event delivered twice",
        "An outbox row relayed again and an event published twice are applied once: each "
        "event reaches the WebSocket once, the fulfilment job does not run again, no "
        "second state change.",
    ),
    Scenario(
        "redis-blackholed",
        f"Redis blackholed {_s('redis_blackhole')} s (packets dropped: only timeouts tell)",
        "The worker's process runs through the outage (its commands time out after "
        f"{_s('redis_socket_timeout')} s and are tried again with backoff, for as long as it "
        "lasts: `WORKER_JOBS__REDIS_OUTAGE_SECONDS=0`), live throughout and not ready, "
        "naming Redis; ready again after the heal, same process; an order placed just before "
        "and one during the outage are each fulfilled once: one `order.confirmed` and one "
        "`order.fulfilled` event each.",
    ),
)

SCENARIO_IDS = tuple(scenario.id for scenario in SCENARIOS)


@dataclass
class Reliability(Figures):
    """Session-wide collector: each scenario's measured figures, and which ones passed."""

    known: tuple[str, ...] = SCENARIO_IDS

    def complete(self) -> bool:
        return all(sid in self.passed and sid in self.measured for sid in SCENARIO_IDS)


def render(measured: Mapping[str, Mapping[str, Any]], *, when: dt.datetime) -> str:
    """docs/reliability.md: one row per scenario, promise and what the last run measured."""
    lines = [
        "# Reliability: what the fault suite promises and measured",
        "",
        "Generated by the fault suite (`uv run pytest -m faults`, tests/faults/) at the end",
        "of a session in which every scenario passed; do not edit by hand. Last run:",
        f"{when.strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "Each scenario runs the four services as real processes on Postgres and Redis",
        "under a steady, bounded load, with faults injected by",
        "`chassis.testing.faultproxy.FaultProxy` (Redis, Postgres and gateway → orders go",
        "through one) or by signals to the processes. Times are wall-clock on the CI",
        "machine (2 shared cores), so read them as orders of magnitude.",
        "",
        "| scenario | promise (settings used) | measured on the last run |",
        "|---|---|---|",
    ]
    for scenario in SCENARIOS:
        text = describe(measured.get(scenario.id, {}))
        lines.append(f"| {scenario.title} | {scenario.promise} | {text} |")
    lines.append("")
    return "\n".join(lines)
