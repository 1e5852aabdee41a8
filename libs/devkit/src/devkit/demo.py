"""``chassis-demo`` (``make demo``): one user's journey through a running platform, step by step.

Signs up a fresh user, logs in, opens the live event WebSocket, places two
orders (the first with an ``Idempotency-Key``, retried once to show the
replay), prints every event as it arrives, then the caller's overview. Exits 0
once both orders reached a final state, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import websockets

from contracts.orders import FINAL_STATUSES

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
FINAL_STATES = frozenset(str(status) for status in FINAL_STATUSES)
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway demo account
FIRST_ORDER = {
    "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_minor": 1250}],
    "currency": "EUR",
}
SECOND_ORDER = {
    "items": [{"sku": "MUG-7", "quantity": 1, "unit_price_minor": 899}],
    "currency": "EUR",
}

Say = Callable[[str], None]


class DemoError(Exception):
    """The journey broke: the message says where."""


def _say(text: str) -> None:
    print(text, flush=True)


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    """The JSON body if ``response`` has ``status``, else a DemoError naming the step."""
    if response.status_code != status:
        detail = response.text[:500]
        raise DemoError(
            f"{what}: {response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {detail}"
        )
    body: dict[str, Any] = response.json()
    return body


def describe_event(event: dict[str, Any]) -> str:
    order = event.get("payload", {}).get("order", {})
    return f"{event.get('type')}  order {order.get('id')}  status {order.get('status')}"


async def sign_up_and_log_in(client: httpx.AsyncClient, say: Say) -> str:
    email = f"demo-{uuid.uuid4().hex[:10]}@example.com"
    credentials = {"email": email, "password": PASSWORD}
    user = expect(
        await client.post("/api/v1/auth/signup", json={**credentials, "display_name": "Demo"}),
        201,
        "sign-up",
    )
    say(f"1. signed up {email} (user id {user['id']})")
    tokens = expect(await client.post("/api/v1/auth/login", json=credentials), 200, "login")
    say(f"2. logged in: access token expires in {tokens.get('expires_in', '?')} s")
    return str(tokens["access_token"])


async def place_orders(client: httpx.AsyncClient, auth: dict[str, str], say: Say) -> list[str]:
    key = str(uuid.uuid4())
    headers = {**auth, "Idempotency-Key": key}
    first = expect(
        await client.post("/api/v1/orders", json=FIRST_ORDER, headers=headers), 201, "first order"
    )
    say(
        f"4. order {first['id']} placed with Idempotency-Key {key}: "
        f"{first['status']}, {first['amount_minor']} {first['currency']} minor units"
    )
    replay = expect(
        await client.post("/api/v1/orders", json=FIRST_ORDER, headers=headers),
        201,
        "retried first order",
    )
    if replay["id"] != first["id"]:
        raise DemoError(f"the retry created another order ({replay['id']}) instead of a replay")
    say(f"5. retried with the same key: the same order {replay['id']} came back (a replay)")
    second = expect(
        await client.post("/api/v1/orders", json=SECOND_ORDER, headers=auth), 201, "second order"
    )
    say(f"6. order {second['id']} placed without a key: {second['status']}")
    return [str(first["id"]), str(second["id"])]


async def follow_events(
    socket: Any, orders: Sequence[str], *, deadline: float, say: Say
) -> dict[str, str]:
    """Print events until every order in ``orders`` is final; their final states."""
    states: dict[str, str] = {}
    while not all(states.get(order) in FINAL_STATES for order in orders):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout=remaining))
        if message.get("type") != "event":
            continue
        event = message["event"]
        say(f"   event: {describe_event(event)}")
        order = event.get("payload", {}).get("order", {})
        if order.get("id") in orders:
            states[order["id"]] = str(order.get("status"))
    return states


async def show_overview(client: httpx.AsyncClient, auth: dict[str, str], say: Say) -> None:
    overview = expect(await client.get("/api/v1/me/overview", headers=auth), 200, "overview")
    profile = overview.get("profile") or {}
    orders = overview.get("orders") or {}
    say(
        f"8. GET /api/v1/me/overview: {profile.get('email')} ({profile.get('role')}), "
        f"orders {orders.get('status')}:"
    )
    for order in orders.get("items") or []:
        say(
            f"   order {order['id']}  {order['status']:<9}  "
            f"{order['amount_minor']} {order['currency']}  version {order['version']}"
        )


async def journey(gateway: str, *, seconds: float, say: Say = _say) -> None:
    """The whole journey; ``seconds`` bounds it (both orders final by then)."""
    started = time.monotonic()
    deadline = started + seconds
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        try:
            await client.get("/health/ready")
        except httpx.TransportError as exc:
            raise DemoError(
                f"the gateway at {gateway} does not answer ({exc!r}); start the platform "
                "with `make dev` first"
            ) from exc
        say(f"gateway {gateway}")
        token = await sign_up_and_log_in(client, say)
        auth = {"Authorization": f"Bearer {token}"}
        ws_url = gateway.replace("https://", "wss://").replace("http://", "ws://") + "/ws/events"
        async with websockets.connect(ws_url, additional_headers=auth) as socket:
            say(f"3. live event stream open: {ws_url}")
            orders = await place_orders(client, auth, say)
            say("7. waiting for the worker to fulfil both orders; events as they arrive:")
            try:
                states = await follow_events(socket, orders, deadline=deadline, say=say)
            except TimeoutError:
                now = await current_states(client, auth, orders)
                raise DemoError(
                    f"not every order reached a final state within {seconds:g} s: {now} "
                    "(is the worker running? `make dev` without --no-worker)"
                ) from None
        await show_overview(client, auth, say)
    summary = ", ".join(f"{order} {state}" for order, state in states.items())
    say(f"done in {time.monotonic() - started:.1f} s: {summary}")


async def current_states(
    client: httpx.AsyncClient, auth: dict[str, str], orders: Sequence[str]
) -> dict[str, str]:
    states = {}
    for order in orders:
        response = await client.get(f"/api/v1/orders/{order}", headers=auth)
        states[order] = (
            str(response.json().get("status")) if response.status_code == 200 else "unknown"
        )
    return states


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chassis-demo", description="Walk one user's journey through a running platform."
    )
    parser.add_argument(
        "--gateway",
        default=os.environ.get("CHASSIS_DEMO_GATEWAY", DEFAULT_GATEWAY),
        help=f"gateway base URL (env CHASSIS_DEMO_GATEWAY; default {DEFAULT_GATEWAY})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds for the whole journey, both orders final (default 30)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(journey(args.gateway.rstrip("/"), seconds=args.timeout))
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (httpx.HTTPError, websockets.WebSocketException, OSError) as exc:
        print(f"demo failed: {exc!r}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
