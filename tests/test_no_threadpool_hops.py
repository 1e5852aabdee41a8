"""No service route hands an endpoint or dependency to FastAPI's thread pool.

A plain ``def`` dependency costs a thread hand-off per request and competes
for the process's 40 thread tokens (chassis.testing.threadpool); the gateway
had two on every proxied route, which capped it near 50 requests/s on the
JWKS route under 16 connections.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI

from chassis.testing.threadpool import threadpool_calls
from gateway.main import create_app as gateway_app
from orders.main import create_app as orders_app
from users.main import create_app as users_app


@pytest.mark.parametrize(
    "create_app", [users_app, orders_app, gateway_app], ids=["users", "orders", "gateway"]
)
def test_every_route_runs_on_the_event_loop(create_app: Callable[[], FastAPI]) -> None:
    assert threadpool_calls(create_app()) == []
