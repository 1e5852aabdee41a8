"""The user journey through the gateway, as a Locust user (runs inside Locust only).

Each simulated user signs up once (or takes a pre-provisioned account), logs in,
then repeats a weighted mix of actions (``loadtests.profiles``) with a pause between
them: list and read its orders (ETag revalidation now and then), create orders with
an ``Idempotency-Key`` (and sometimes retry one to check the replay), read its
profile and overview, refresh its tokens, and now and then open the live event
stream, place an order and time how long its ``order.created`` event takes to
arrive. Access tokens are refreshed before they expire, as a real client would.

Every request is named by its path template and checked for the status the API
promises; anything else, 429 included, is a failure that counts against the SLO.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import gevent
from locust import task
from locust.clients import HttpSession
from locust.env import Environment

from loadtests import endpoints
from loadtests.gateway_user import (
    ADDRESSES_PER_WORKER,
    AUTH_ATTEMPTS,
    IDENTITIES,
    MAX_RETRY_AFTER_SECONDS,
    REFRESH_MARGIN_SECONDS,
    GatewayUser,
    Identities,
    describe,
    header,
    order_body,
    retry_after,
)
from loadtests.profiles import PROFILES, pick

__all__ = [
    "ADDRESSES_PER_WORKER",
    "AUTH_ATTEMPTS",
    "IDENTITIES",
    "KNOWN_ORDERS",
    "MAX_RETRY_AFTER_SECONDS",
    "REFRESH_MARGIN_SECONDS",
    "REPLAY_SHARE",
    "REVALIDATE_SHARE",
    "GatewayUser",
    "Identities",
    "JourneyUser",
    "describe",
    "header",
    "order_body",
    "retry_after",
]

#: Share of created orders posted a second time with the same key (the replay check).
REPLAY_SHARE = 0.1
#: Share of order reads that revalidate with If-None-Match.
REVALIDATE_SHARE = 0.3
#: Orders a user remembers to read back.
KNOWN_ORDERS = 20


class JourneyUser(GatewayUser):
    """A signed-in customer: browses its orders mostly, orders now and then, watches events."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # order id -> its last ETag (None until read once)
        self.orders: dict[str, str | None] = {}
        self._events: HttpSession | None = None

    @task
    def act(self) -> None:
        """One action drawn from the profile's weights (``--mix``)."""
        if not self.ensure_fresh_token():
            return
        getattr(self, pick(self.weights(), self.rng))()

    def weights(self) -> dict[str, int]:
        return PROFILES[self.options.mix]

    def remember(self, order_id: str, etag: str | None = None) -> None:
        self.orders.pop(order_id, None)
        self.orders[order_id] = etag
        while len(self.orders) > KNOWN_ORDERS:
            self.orders.pop(next(iter(self.orders)))

    def list_orders(self) -> None:
        response = self.call(
            endpoints.LIST_ORDERS, "/api/v1/orders", params={"limit": 20}, expect=(200,)
        )
        if response is not None:
            for order in response.json()["items"][:5]:
                self.orders.setdefault(order["id"], None)

    def read_order(self) -> None:
        if not self.orders:
            self.list_orders()
            return
        order_id = self.rng.choice(list(self.orders))
        etag = self.orders[order_id]
        headers = {"If-None-Match": etag} if etag and self.rng.random() < REVALIDATE_SHARE else {}
        response = self.call(
            endpoints.GET_ORDER, f"/api/v1/orders/{order_id}", headers=headers, expect=(200, 304)
        )
        if response is not None:
            self.remember(order_id, header(response, "ETag"))

    def create_order(self) -> str | None:
        key = str(uuid.uuid4())
        body = order_body(self.rng)
        response = self.call(
            endpoints.CREATE_ORDER,
            "/api/v1/orders",
            json=body,
            headers={"Idempotency-Key": key},
            expect=(201,),
        )
        if response is None:
            return None
        order_id: str = response.json()["id"]
        self.remember(order_id)
        if self.rng.random() < REPLAY_SHARE:
            self.replay_order(key, body, order_id)
        return order_id

    def replay_order(self, key: str, body: dict[str, Any], order_id: str) -> None:
        """The same key and body again: the first answer, marked as replayed."""
        with self.client.request(
            endpoints.REPLAY_ORDER.method,
            "/api/v1/orders",
            name=endpoints.REPLAY_ORDER.name,
            json=body,
            headers=self.headers({"Idempotency-Key": key}),
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(describe(response))
            elif header(response, "Idempotent-Replayed") != "true":
                response.failure("replay not marked Idempotent-Replayed")
            elif response.json().get("id") != order_id:
                response.failure("replay answered another order")
            else:
                response.success()

    def overview(self) -> None:
        self.call(endpoints.OVERVIEW, "/api/v1/me/overview", expect=(200,))

    def profile(self) -> None:
        self.call(endpoints.ME, "/api/v1/users/me", expect=(200,))

    def watch_events(self) -> None:
        """Open the SSE stream, place an order, time its ``order.created`` event."""
        timeout = float(self.options.events_timeout)
        if self._events is None:
            # requests (not geventhttpclient) for the stream: it hands chunks over as they come.
            self._events = HttpSession(
                base_url=self.host, request_event=self.environment.events.request, user=self
            )
        stream = self._events.request(
            endpoints.OPEN_EVENTS.method,
            endpoints.OPEN_EVENTS.name,
            name=endpoints.OPEN_EVENTS.name,
            headers=self.headers({"Accept": "text/event-stream"}),
            stream=True,
            timeout=(self.connection_timeout, timeout),
            catch_response=True,
        )
        try:
            with stream:
                if stream.status_code != 200:
                    stream.failure(f"HTTP {stream.status_code}")
                    return
                stream.success()
            started = time.perf_counter()
            order_id = self.create_order()
            if order_id is not None:
                self.await_event(stream, order_id, started=started, timeout=timeout)
        finally:
            # Closing drops the connection, so the gateway frees this user's stream slot.
            stream.close()

    def await_event(self, stream: Any, order_id: str, *, started: float, timeout: float) -> None:
        exception: BaseException | None = None
        try:
            with gevent.Timeout(timeout, TimeoutError(f"no order.created within {timeout:g} s")):
                event_type = ""
                for line in stream.iter_lines(chunk_size=None, decode_unicode=True):
                    if line.startswith("event:"):
                        event_type = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and event_type == "order.created":
                        data = json.loads(line.removeprefix("data:"))
                        if data.get("payload", {}).get("order", {}).get("id") == order_id:
                            break
                    elif not line:
                        event_type = ""
                else:
                    exception = ConnectionError("the event stream ended")
        except TimeoutError as exc:
            exception = exc
        self.environment.events.request.fire(
            request_type=endpoints.EVENT_DELIVERY.method,
            name=endpoints.EVENT_DELIVERY.name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context=self.context(),
        )

    def on_stop(self) -> None:
        if self._events is not None:
            self._events.close()
