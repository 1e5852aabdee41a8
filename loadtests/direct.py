"""Locust entry point of the per-service suites: users and orders without the gateway.

    locust -f loadtests/direct.py UsersServiceUser --host http://127.0.0.1:8001
    locust -f loadtests/direct.py OrdersServiceUser --orders-host http://127.0.0.1:8002 \\
        --users-host http://127.0.0.1:8001

They measure one service alone (what the gateway adds is the difference to the
journey). OrdersServiceUser gets its tokens from users; those requests count in the
auth group, the rest is the order mix of ``--mix``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import events, task  # noqa: E402
from locust.contrib.fasthttp import FastHttpSession  # noqa: E402
from locust.env import Environment  # noqa: E402

# Modules, not classes: a User class in this namespace would run in these suites too.
from loadtests import endpoints, hooks, journey  # noqa: E402
from loadtests.profiles import CREATE_ORDER, LIST_ORDERS, PROFILES, READ_ORDER  # noqa: E402

ORDER_ACTIONS = (LIST_ORDERS, READ_ORDER, CREATE_ORDER)


class UsersServiceUser(journey.GatewayUser):
    """users alone: sign-up and login on start, then profile reads, refreshes and the JWKS."""

    @task(6)
    def profile(self) -> None:
        if self.ensure_fresh_token():
            self.call(endpoints.ME, "/api/v1/users/me", expect=(200,))

    @task(2)
    def rotate_tokens(self) -> None:
        self.refresh()

    @task(2)
    def jwks(self) -> None:
        self.call(endpoints.JWKS, "/.well-known/jwks.json", authorised=False, expect=(200,))


class OrdersServiceUser(journey.JourneyUser):
    """orders alone: list, read and create orders with tokens that users issued."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        users_host = (options.users_host if options else "") or self.host
        self._auth = FastHttpSession(
            base_url=users_host,
            request_event=environment.events.request,
            user=self,
            insecure=self.insecure,
            network_timeout=self.network_timeout,
            connection_timeout=self.connection_timeout,
        )

    @property
    def auth_client(self) -> FastHttpSession:
        return self._auth

    def weights(self) -> dict[str, int]:
        mix = PROFILES[self.options.mix]
        return {action: mix[action] for action in ORDER_ACTIONS}


@events.init.add_listener
def point_at_services(environment: Environment, **_: Any) -> None:
    """--users-host / --orders-host, when given, win over --host for their suite."""
    options = environment.parsed_options
    if options is None:
        return
    if options.users_host:
        UsersServiceUser.host = options.users_host
    if options.orders_host:
        OrdersServiceUser.host = options.orders_host


__all__ = ["OrdersServiceUser", "UsersServiceUser"]

_shape = hooks.selected_shape()
if _shape is not None:
    SelectedShape = _shape
