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

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, task
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession, FastResponse, ResponseContextManager
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import endpoints
from loadtests.accounts import Account, client_addresses, new_account, read_accounts, rotation
from loadtests.endpoints import Endpoint
from loadtests.profiles import PROFILES, pick

#: Refresh the access token when less than this is left of it.
REFRESH_MARGIN_SECONDS = 30.0
#: Sign-up and login are retried this often after a 429 (each 429 is still a failure).
AUTH_ATTEMPTS = 3
#: Longest Retry-After a user honours before trying again.
MAX_RETRY_AFTER_SECONDS = 30.0
#: Share of created orders posted a second time with the same key (the replay check).
REPLAY_SHARE = 0.1
#: Share of order reads that revalidate with If-None-Match.
REVALIDATE_SHARE = 0.3
#: Orders a user remembers to read back.
KNOWN_ORDERS = 20
#: Distance between the client addresses of two worker processes (--client-ips).
ADDRESSES_PER_WORKER = 4096


class Identities:
    """Per process: where accounts and client addresses come from (set up on first use)."""

    def __init__(self) -> None:
        self._accounts: Iterator[Account] | None = None
        self._addresses: Iterator[str] | None = None
        self._ready = False

    def _setup(self, environment: Environment) -> None:
        options = environment.parsed_options
        if options is None:
            raise RuntimeError("the suites need Locust's parsed options")
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        if options.accounts:
            accounts = read_accounts(Path(options.accounts))
            # Spread worker processes over the list rather than all starting at its head.
            self._accounts = rotation(accounts, start=index * 997)
        if options.client_ips:
            self._addresses = client_addresses(
                options.client_ips, start=index * ADDRESSES_PER_WORKER
            )
        self._ready = True

    def next_account(self, environment: Environment) -> Account | None:
        if not self._ready:
            self._setup(environment)
        return next(self._accounts) if self._accounts is not None else None

    def next_address(self, environment: Environment) -> str | None:
        if not self._ready:
            self._setup(environment)
        return next(self._addresses) if self._addresses is not None else None


IDENTITIES = Identities()


def order_body(rng: random.Random) -> dict[str, Any]:
    """A small, valid order: one to three lines."""
    return {
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 500)}",
                "quantity": rng.randint(1, 5),
                "unit_price_minor": rng.randint(100, 10_000),
            }
            for _ in range(rng.randint(1, 3))
        ],
        "currency": "EUR",
    }


def describe(response: FastResponse) -> str:
    """A failure message with few distinct values (Locust groups failures by message)."""
    if not response.status_code:
        return f"no response: {type(getattr(response, 'error', None)).__name__}"
    title = ""
    try:
        body = json.loads(response.content or b"{}")
        if isinstance(body, dict):
            title = str(body.get("title", ""))[:80]
    except ValueError:
        pass
    return f"HTTP {response.status_code} {title}".rstrip()


def header(response: FastResponse, name: str) -> str | None:
    value = response.headers.get(name) if response.headers else None
    return value if isinstance(value, str) else None


def retry_after(response: FastResponse) -> float:
    try:
        seconds = float(header(response, "Retry-After") or "1")
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class GatewayUser(FastHttpUser):
    """Shared by the gateway suites: a signed-in account, its tokens, checked requests."""

    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0
    # A verified certificate by default: staging targets are real HTTPS endpoints.
    insecure = False

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random()  # noqa: S311 - a traffic mix, not a secret
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.expires_at = 0.0
        self.forwarded_for: str | None = None
        self.account: Account | None = None

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    @property
    def auth_client(self) -> FastHttpSession:
        """Where sign-up, login and refresh go (the gateway; users itself in the direct suite)."""
        return self.client

    def wait_time(self) -> float:
        return self.rng.uniform(self.options.wait_min, self.options.wait_max)

    def on_start(self) -> None:
        self.forwarded_for = IDENTITIES.next_address(self.environment)
        self.account = IDENTITIES.next_account(self.environment)
        self.sign_in()

    def sign_in(self) -> None:
        """Sign up (unless the account was provisioned) and log in.

        A refusal leaves the user without a token; it tries again at its next action
        after its usual pause, as a person would, and each refusal counts as a failure.
        """
        if self.account is None:
            account = new_account(domain=self.options.email_domain, password=self.options.password)
            if self.auth_request(endpoints.SIGNUP, json=dataclasses.asdict(account), expect=201):
                self.account = account
        if self.account is not None:
            self.log_in()

    # --- requests -----------------------------------------------------------------------

    def headers(
        self, extra: Mapping[str, str] | None = None, *, authorised: bool = True
    ) -> dict[str, str]:
        headers = dict(extra or {})
        if authorised and self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        return headers

    def call(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        expect: tuple[int, ...],
        authorised: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ResponseContextManager | None:
        """One request under ``endpoint``'s name; None (and a failure) unless ``expect``ed."""
        with self.client.request(
            endpoint.method,
            path,
            name=endpoint.name,
            headers=self.headers(headers, authorised=authorised),
            catch_response=True,
            **kwargs,
        ) as response:
            if response.status_code in expect:
                response.success()
                checked: ResponseContextManager = response
                return checked
            response.failure(describe(response))
            # After a 401 the token is no good: get a new one before the next action.
            if response.status_code == 401 and authorised:
                self.expires_at = 0.0
            return None

    def auth_request(self, endpoint: Endpoint, *, json: Any, expect: int) -> dict[str, Any] | None:
        """Sign-up or login, retried after a 429 (honouring Retry-After); None if refused."""
        for _ in range(AUTH_ATTEMPTS):
            with self.auth_client.request(
                endpoint.method,
                endpoint.name,
                name=endpoint.name,
                json=json,
                headers=self.headers(authorised=False),
                catch_response=True,
            ) as response:
                if response.status_code == expect:
                    response.success()
                    body: dict[str, Any] = response.json()
                    return body
                response.failure(describe(response))
                if response.status_code != 429:
                    break
                pause = retry_after(response)
            gevent.sleep(pause)
        return None

    def log_in(self) -> None:
        if self.account is None:
            raise RuntimeError("log_in before an account was chosen")
        body = self.auth_request(
            endpoints.LOGIN,
            json={"email": self.account.email, "password": self.account.password},
            expect=200,
        )
        if body is not None:
            self.keep_tokens(body)

    def keep_tokens(self, body: dict[str, Any]) -> None:
        self.access_token = body["access_token"]
        self.refresh_token = body["refresh_token"]
        self.expires_at = time.monotonic() + float(body["expires_in"])

    def refresh(self) -> None:
        """Rotate the token pair (the old refresh token stops working)."""
        if self.refresh_token is None:
            self.sign_in()
            return
        with self.auth_client.request(
            endpoints.REFRESH.method,
            endpoints.REFRESH.name,
            name=endpoints.REFRESH.name,
            json={"refresh_token": self.refresh_token},
            headers=self.headers(authorised=False),
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                response.success()
                self.keep_tokens(response.json())
                return
            response.failure(describe(response))
        # A refused refresh (revoked, reused, rate-limited) ends this login: the next
        # action starts a new one.
        self.access_token = None
        self.refresh_token = None
        self.expires_at = 0.0

    def ensure_fresh_token(self) -> bool:
        """Refresh (or sign in again) when needed; False while the user has no token."""
        if time.monotonic() >= self.expires_at - REFRESH_MARGIN_SECONDS:
            self.refresh()
        return self.access_token is not None


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
