"""Two replicas of every service behind nginx: exactly-once events, one fulfilment per
order, exact rate limits, key rotation, and a rolling restart under load.

The fixture (conftest.py) starts the replicas; each test drives clients through
the balancer and reads what happened from orders' database, arq's kept job
results, the WebSockets and nginx's access log. Figures go to the "Replicas"
section of docs/reliability.md (report.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from chassis.jobs import job_id_for
from tests.replicas.conftest import (
    KEY_REFRESH_SECONDS,
    RATE_LIMIT,
    RATE_LIMIT_PATH,
    Replicas,
)
from tests.replicas.report import REPORT
from tests.support.accounts import ORDER, PASSWORD, bearer, sign_up_and_log_in
from tests.support.events import EventLog, event_socket

SECTION = "replicas"
#: The first test also waits for the eight processes to start on a busy 2-core machine.
pytestmark = [pytest.mark.replicas, pytest.mark.slow, pytest.mark.timeout(420)]

LIFECYCLE = ["order.confirmed", "order.created", "order.fulfilled"]
#: Accounts in the journey; even ones hold their WebSocket on gateway-1, odd ones on gateway-2.
ACCOUNTS = 4
#: Pause between one account's orders.
PACE_SECONDS = 0.6
#: How long a client keeps retrying one order (one Idempotency-Key) before it gives up:
#: long, so that "given up" means the platform lost the order, not that the machine is slow.
GIVE_UP_SECONDS = 60.0
#: Time with every replica up before and after the restarts.
STEADY_SECONDS = 4.0
#: One replica of each service, in this order (index 0 is replica 1).
ROLLING_RESTART = (("users", 0), ("orders", 0), ("worker", 0), ("gateway", 0))
DELIVERY_DEADLINE_SECONDS = 90.0
#: WebSockets one user opens through nginx (round robin: half on each gateway).
BALANCED_SOCKETS = 4
#: What a verifier may take to accept a new key: its JWKS refetch on an unknown kid is
#: spaced at least AUTH__JWKS_MIN_REFRESH_INTERVAL_SECONDS (10 s) from the previous fetch.
ROTATION_DEADLINE_SECONDS = 30.0


@dataclass
class Placed:
    """One order a client tried to place: every answer it got, and the order if accepted."""

    key: str
    answers: list[str] = field(default_factory=list)
    order_id: str | None = None


@dataclass
class Client:
    name: str
    account: dict[str, Any]
    gateway_index: int
    logs: list[EventLog] = field(default_factory=list)
    placed: list[Placed] = field(default_factory=list)
    #: Answers to GET /api/v1/me/overview (the gateway calls users and orders through nginx).
    reads: list[str] = field(default_factory=list)
    sockets: AsyncExitStack = field(default_factory=AsyncExitStack)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def owner(self) -> str:
        return str(self.account["user"]["id"])

    def events(self) -> list[dict[str, Any]]:
        return [event for log in self.logs for event in log.events]

    def types_of(self, order_id: str) -> list[str]:
        return sorted(e["type"] for e in self.events() if e["payload"]["order"]["id"] == order_id)

    def accepted(self) -> list[str]:
        return [p.order_id for p in self.placed if p.order_id is not None]

    async def open_socket(self, replicas: Replicas) -> None:
        url = replicas.replica("gateway", self.gateway_index)
        log = EventLog(gateway=f"gateway-{self.gateway_index + 1}")
        self.logs.append(log)
        await self.sockets.enter_async_context(event_socket(url, self.account["access_token"], log))


async def place(http: httpx.AsyncClient, client: Client) -> Placed:
    """POST one order through the balancer, retrying with the same key on 5xx or no answer."""
    placed = Placed(key=str(uuid.uuid4()))
    headers = {**bearer(client.account), "Idempotency-Key": placed.key}
    give_up_at = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < give_up_at:
        try:
            response = await http.post("/api/v1/orders", json=ORDER, headers=headers)
        except httpx.TransportError as exc:
            placed.answers.append(type(exc).__name__)
        else:
            placed.answers.append(str(response.status_code))
            if response.status_code == 201:
                placed.order_id = str(response.json()["id"])
                return placed
            if response.status_code < 500 and response.status_code != 409:
                return placed  # refused for good: the test reports it
        await asyncio.sleep(0.5)
    return placed


async def post_loop(http: httpx.AsyncClient, client: Client, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if not client.running.is_set():
            client.idle.set()
            await client.running.wait()
            client.idle.clear()
            continue
        client.placed.append(await place(http, client))
        try:
            read = await http.get("/api/v1/me/overview", headers=bearer(client.account))
            client.reads.append(str(read.status_code))
        except httpx.TransportError as exc:
            client.reads.append(type(exc).__name__)
        await asyncio.sleep(PACE_SECONDS)
    client.idle.set()


async def wait_delivered(clients: list[Client], *, within: float) -> None:
    """Until every accepted order's three events are on its owner's sockets."""
    deadline = time.monotonic() + within
    while True:
        missing = [
            (c.name, order_id)
            for c in clients
            for order_id in c.accepted()
            if len(c.types_of(order_id)) < len(LIFECYCLE)
        ]
        if not missing:
            return
        assert time.monotonic() < deadline, f"events missing for {len(missing)}: {missing[:5]}"
        await asyncio.sleep(0.2)


async def wait_fulfilled(replicas: Replicas, order_ids: list[str], *, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = await replicas.orders_query(
            "SELECT id::text, status FROM orders WHERE id::text = ANY(%s)", order_ids
        )
        pending = [row for row in rows if row[1] != "fulfilled"]
        if len(rows) == len(order_ids) and not pending:
            return
        assert time.monotonic() < deadline, f"not fulfilled: {pending[:5]} of {len(order_ids)}"
        await asyncio.sleep(0.2)


async def job_results(replicas: Replicas, order_ids: list[str]) -> dict[str, Any]:
    arq = ArqRedis.from_url(replicas.redis_url)
    try:
        return {
            order_id: await Job(job_id_for("orders.fulfil", order_id), arq).result_info()
            for order_id in order_ids
        }
    finally:
        await arq.aclose()


async def metric(url: str, name: str, **labels: str) -> float:
    """The sum of one counter's samples on a replica's /metrics, filtered by labels."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url + "/metrics")).text
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(label in line for label in wanted)
    )


async def restart_gateway(
    replicas: Replicas, clients: list[Client], index: int
) -> tuple[float, list[int | str | None]]:
    """Restart gateway `index` as a client would live through it.

    Its clients stop placing orders and wait for the events of those they placed
    (a socket closed by the restart would miss the rest: there is no resume), the
    gateway is SIGTERMed (their sockets close with 1012), started again, and they
    reconnect to it and carry on. Everyone else keeps placing orders through the
    balancer, which routes round the gateway while it is out.
    """
    group = [c for c in clients if c.gateway_index == index]
    for client in group:
        client.running.clear()
    await asyncio.gather(*(client.idle.wait() for client in group))
    await wait_delivered(group, within=DELIVERY_DEADLINE_SECONDS)
    out = await asyncio.to_thread(replicas.restart, "gateway", index)
    codes = []
    for client in group:
        codes.append(client.logs[-1].closed)
        await client.sockets.aclose()
        client.sockets = AsyncExitStack()
        await client.open_socket(replicas)
        client.running.set()
    return out, codes


async def test_the_journey_through_two_of_everything_survives_a_rolling_restart(
    replicas: Replicas,
) -> None:
    async with httpx.AsyncClient(base_url=replicas.balancer("gateway"), timeout=20) as http:
        clients = [
            Client(f"replica-{i}", await sign_up_and_log_in(http, f"replica-{i}"), i % 2)
            for i in range(ACCOUNTS)
        ]
        for client in clients:
            await client.open_socket(replicas)
            client.running.set()
        stop = asyncio.Event()
        loops = [asyncio.create_task(post_loop(http, client, stop)) for client in clients]
        try:
            await asyncio.sleep(STEADY_SECONDS)
            out: dict[str, float] = {}
            closes: list[int | str | None] = []
            for service, index in ROLLING_RESTART:
                name = f"{service}-{index + 1}"
                if service == "gateway":
                    out[name], closes = await restart_gateway(replicas, clients, index)
                else:
                    out[name] = await asyncio.to_thread(replicas.restart, service, index)
            await asyncio.sleep(STEADY_SECONDS)
        finally:
            stop.set()
            for client in clients:
                client.running.set()
            await asyncio.gather(*loops)

        placed = [p for c in clients for p in c.placed]
        accepted = [p.order_id for p in placed if p.order_id is not None]
        await wait_fulfilled(replicas, accepted, within=DELIVERY_DEADLINE_SECONDS)
        await wait_delivered(clients, within=DELIVERY_DEADLINE_SECONDS)
        await asyncio.sleep(1.0)  # what would be a duplicate delivery has had time to arrive
        for client in clients:
            await client.sockets.aclose()

    # Orders: one per key, each fulfilled, three outbox rows each, all sent.
    owners = [c.owner for c in clients]
    rows = await replicas.orders_query(
        "SELECT id::text, status FROM orders WHERE owner_id = ANY(%s)", owners
    )
    outbox = await replicas.orders_query(
        "SELECT payload->'order'->>'id', event_type, sent_at IS NOT NULL FROM outbox "
        "WHERE payload->'order'->>'owner_id' = ANY(%s)",
        owners,
    )
    staged: dict[str, list[str]] = {}
    for order_id, event_type, sent in outbox:
        assert sent, f"outbox row of {order_id} never sent"
        staged.setdefault(order_id, []).append(event_type)
    results = await job_results(replicas, accepted)
    tries = Counter(result.job_try if result else None for result in results.values())

    # Sockets: each order's three events once, on its owner's sockets only.
    duplicates = sum(len(c.events()) - len({e["id"] for e in c.events()}) for c in clients)
    wrong = [(c.name, order_id, c.types_of(order_id)) for c in clients for order_id in c.accepted()]
    wrong = [item for item in wrong if item[2] != LIFECYCLE]
    foreign = sum(
        1 for c in clients for e in c.events() if e["payload"]["order"]["id"] not in c.accepted()
    )
    by_gateway = Counter(log.gateway for c in clients for log in c.logs for _ in log.events)

    answers = Counter(answer for p in placed for answer in p.answers if answer != "201")
    reads = Counter(answer for c in clients for answer in c.reads)
    refused = [p for p in placed if p.order_id is None]
    posts = [e for e in replicas.nginx.log() if (e.method, e.path) == ("POST", "/api/v1/orders")]
    # The replica that answered (the last one nginx tried), per hop: client → gateway → orders.
    served = Counter(replicas.label(e.replicas[-1]) for e in posts if e.replicas)
    retried = Counter(e.service for e in posts if e.retried)
    workers = {
        f"worker-{i + 1}": await metric(
            replicas.replica("worker", i), "job_outcomes_total", outcome="success"
        )
        for i in range(2)
    }

    REPORT.record(
        "events-once",
        accounts=ACCOUNTS,
        sockets_per_gateway_at_start=f"{ACCOUNTS // 2} + {ACCOUNTS // 2}",
        events_received_on_gateway_1_sockets=by_gateway["gateway-1"],
        events_received_on_gateway_2_sockets=by_gateway["gateway-2"],
        orders_with_exactly_created_confirmed_fulfilled_once=len(accepted) - len(wrong),
        orders=len(accepted),
        duplicate_events=duplicates,
        events_of_other_users=foreign,
        close_codes_at_gateway_1_restart=closes,
    )
    REPORT.record(
        "fulfilled-once",
        orders_in_database=len(rows),
        fulfilled=sum(1 for row in rows if row[1] == "fulfilled"),
        outbox_rows=len(outbox),
        orders_with_one_row_per_state=sum(1 for v in staged.values() if sorted(v) == LIFECYCLE),
        fulfilment_job_tries=dict(sorted(tries.items(), key=str)),
        successful_jobs_since_last_start=workers,
        posts_served_per_replica=dict(sorted(served.items())),
    )
    REPORT.record(
        "rolling-restart",
        restarted_in_turn=" → ".join(out),
        seconds_out_each=out,
        orders_posted=len(placed),
        accepted=len(accepted),
        given_up=len(refused),
        non_2xx_answers_then_retried_with_the_same_key=dict(sorted(answers.items())),
        posts_nginx_retried_on_the_other_replica=dict(sorted(retried.items())),
        profile_reads_answered=dict(sorted(reads.items())),
        accepted_and_not_fulfilled=len(accepted) - sum(1 for r in rows if r[1] == "fulfilled"),
    )

    assert refused == [], f"orders never accepted: {[(p.key, p.answers) for p in refused]}"
    assert set(reads) == {"200"}, f"profile reads that failed during the restarts: {reads}"
    assert len(set(accepted)) == len(accepted) == len(rows), "one order per Idempotency-Key"
    assert all(row[1] == "fulfilled" for row in rows)
    assert all(sorted(staged.get(order_id, [])) == LIFECYCLE for order_id in accepted)
    assert all(result is not None and result.success for result in results.values())
    assert duplicates == 0, "an event reached a WebSocket twice"
    assert wrong == [], f"orders whose events did not arrive exactly once: {wrong[:5]}"
    assert foreign == 0
    assert by_gateway["gateway-1"] > 0
    assert by_gateway["gateway-2"] > 0


async def test_a_rate_limit_holds_exactly_across_both_gateways(replicas: Replicas) -> None:
    gateways = [replicas.replica("gateway", index) for index in range(2)]
    async with httpx.AsyncClient(base_url=replicas.balancer("gateway"), timeout=20) as http:
        alternate = await sign_up_and_log_in(http, "limit-alternate")
        burst = await sign_up_and_log_in(http, "limit-burst")
    fired = 3 * RATE_LIMIT

    async with httpx.AsyncClient(timeout=20) as http:
        # One at a time, alternating gateways.
        alternating: list[tuple[int, int]] = []
        for i in range(fired):
            response = await http.get(gateways[i % 2] + RATE_LIMIT_PATH, headers=bearer(alternate))
            alternating.append((i % 2, response.status_code))
        # All at once, half on each gateway.
        responses = await asyncio.gather(
            *(
                http.get(gateways[i % 2] + RATE_LIMIT_PATH, headers=bearer(burst))
                for i in range(fired)
            )
        )
    concurrent = [(i % 2, r.status_code) for i, r in enumerate(responses)]

    def allowed(answers: list[tuple[int, int]]) -> int:
        return sum(1 for _, status in answers if status == 200)

    REPORT.record(
        "rate-limit",
        limit=f"{RATE_LIMIT} per user per {RATE_LIMIT_PATH} window",
        fired_alternating=fired,
        allowed_alternating=allowed(alternating),
        allowed_alternating_per_gateway=f"{allowed([a for a in alternating if a[0] == 0])} + "
        f"{allowed([a for a in alternating if a[0] == 1])}",
        fired_concurrently=fired,
        allowed_concurrently=allowed(concurrent),
        allowed_concurrently_per_gateway=f"{allowed([a for a in concurrent if a[0] == 0])} + "
        f"{allowed([a for a in concurrent if a[0] == 1])}",
        other_answers=sorted({s for _, s in alternating + concurrent} - {200, 429}),
    )
    for answers in (alternating, concurrent):
        assert {status for _, status in answers} <= {200, 429}
        assert allowed(answers) == RATE_LIMIT
    assert {index for index, status in alternating if status == 200} == {0, 1}


async def test_websockets_through_the_balancer_land_on_both_gateways_and_get_each_event_once(
    replicas: Replicas,
) -> None:
    async with httpx.AsyncClient(base_url=replicas.balancer("gateway"), timeout=20) as http:
        account = await sign_up_and_log_in(http, "balanced-sockets")
        logs = [EventLog(gateway="balancer") for _ in range(BALANCED_SOCKETS)]
        async with AsyncExitStack() as stack:
            for log in logs:
                await stack.enter_async_context(
                    event_socket(replicas.balancer("gateway"), account["access_token"], log)
                )
            created = await http.post(
                "/api/v1/orders",
                json=ORDER,
                headers={**bearer(account), "Idempotency-Key": str(uuid.uuid4())},
            )
            assert created.status_code == 201, created.text
            order_id = str(created.json()["id"])
            deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
            while any(len(log.of(order_id)) < len(LIFECYCLE) for log in logs):
                assert time.monotonic() < deadline, [log.of(order_id) for log in logs]
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # room for a duplicate
    # nginx logs a WebSocket when it closes: 101, and the gateway replica it went to.
    deadline = time.monotonic() + 10
    while True:
        upgraded = [
            entry
            for entry in replicas.nginx.log()
            if entry.path == "/ws/events" and entry.status == 101 and entry.service == "gateway"
        ]
        if len(upgraded) >= BALANCED_SOCKETS or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    landed = Counter(replicas.label(entry.replicas[-1]) for entry in upgraded[-BALANCED_SOCKETS:])
    REPORT.record(
        "events-once",
        sockets_opened_through_nginx=BALANCED_SOCKETS,
        nginx_sockets_per_gateway=dict(sorted(landed.items())),
        nginx_sockets_given_the_order_events_once=sum(
            1 for log in logs if sorted(log.of(order_id)) == LIFECYCLE
        ),
    )
    assert all(sorted(log.of(order_id)) == LIFECYCLE for log in logs)
    assert set(landed) == {"gateway-1", "gateway-2"}, landed


async def users_active_kid(url: str) -> str | None:
    async with httpx.AsyncClient(timeout=5) as http:
        ready = (await http.get(url + "/health/ready")).json()
    details = ready["checks"]["signing_keys"].get("details") or {}
    kid = details.get("active_kid")
    return None if kid is None else str(kid)


async def test_a_key_rotated_on_one_users_replica_is_honoured_by_every_verifier(
    replicas: Replicas,
) -> None:
    users = [replicas.replica("users", index) for index in range(2)]
    before = await users_active_kid(users[0])
    rotated = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "users.keys.cli"],
        env={**os.environ, **replicas.users_env(0)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rotated_at = time.monotonic()
    assert rotated.returncode == 0, rotated.stderr
    kid = rotated.stdout.split()[4].rstrip(";")
    assert kid != before

    published_after: dict[str, float] = {}
    deadline = rotated_at + ROTATION_DEADLINE_SECONDS
    while len(published_after) < 2:
        for index, url in enumerate(users):
            name = f"users-{index + 1}"
            if name not in published_after and await users_active_kid(url) == kid:
                published_after[name] = time.monotonic() - rotated_at
        assert time.monotonic() < deadline, (
            f"the new key is not active everywhere: {published_after}"
        )
        await asyncio.sleep(0.1)

    # A token signed with the new key, from users-1 (signed up and logged in there).
    email = f"rotation-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=users[0], timeout=20) as http:
        signup = await http.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        login = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == kid

    verifiers = {
        **{f"gateway-{i + 1}": replicas.replica("gateway", i) + "/api/v1/orders" for i in range(2)},
        **{f"orders-{i + 1}": replicas.replica("orders", i) + "/api/v1/orders" for i in range(2)},
        **{f"users-{i + 1}": replicas.replica("users", i) + "/api/v1/users/me" for i in range(2)},
    }
    first: dict[str, int] = {}
    accepted_after: dict[str, float] = {}
    asked_at = time.monotonic()
    async with httpx.AsyncClient(timeout=20) as http:
        auth = {"Authorization": f"Bearer {token}"}
        while len(accepted_after) < len(verifiers):
            for name, url in verifiers.items():
                if name in accepted_after:
                    continue
                status = (await http.get(url, headers=auth)).status_code
                first.setdefault(name, status)
                if status == 200:
                    accepted_after[name] = time.monotonic() - asked_at
            assert time.monotonic() < asked_at + ROTATION_DEADLINE_SECONDS, (
                f"verifiers that never accepted the new key: {set(verifiers) - set(accepted_after)}"
            )
            await asyncio.sleep(0.5)
        # And the order it places is fulfilled: the workers' calls still verify at orders.
        created = await http.post(
            replicas.balancer("gateway") + "/api/v1/orders",
            json=ORDER,
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
    assert created.status_code == 201, created.text
    await wait_fulfilled(replicas, [str(created.json()["id"])], within=DELIVERY_DEADLINE_SECONDS)

    REPORT.record(
        "jwks-rotation",
        rotated_with="users-rotate-keys in users-1's environment",
        key_refresh_setting_s=KEY_REFRESH_SECONDS,
        seconds_until_active_on=published_after,
        verifiers_accepting_the_new_key=f"{len(accepted_after)}/{len(verifiers)}",
        accepted_at_first_request=sum(1 for status in first.values() if status == 200),
        first_answers=dict(first),
        seconds_until_accepted_by=accepted_after,
        order_placed_with_the_new_key="fulfilled",
    )
    assert set(accepted_after) == set(verifiers)
