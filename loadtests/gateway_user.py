"""The signed-in Locust user every gateway suite builds on (runs inside Locust only).

A `GatewayUser` signs up once (or takes a pre-provisioned account), logs in, keeps its
access token fresh (refreshed before it expires, as a real client would), and sends
every request under its endpoint's name, checked for the status the API promises:
anything else, 429 included, is a failure that counts against the SLO. The journey
itself (what the user does once signed in) is `loadtests.journey.JourneyUser`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser
from locust.contrib.fasthttp import FastHttpSession, FastResponse, ResponseContextManager
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import endpoints
from loadtests.accounts import Account, client_addresses, new_account, read_accounts, rotation
from loadtests.endpoints import Endpoint

#: Refresh the access token when less than this is left of it.
REFRESH_MARGIN_SECONDS = 30.0
#: Sign-up and login are retried this often after a 429 (each 429 is still a failure).
AUTH_ATTEMPTS = 3
#: Longest Retry-After a user honours before trying again.
MAX_RETRY_AFTER_SECONDS = 30.0
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
