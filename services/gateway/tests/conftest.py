"""Fixtures: fake upstreams on real sockets (per session), a served gateway per test."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gateway_testing import (
    Events,
    Gateway,
    GatewayFactory,
    OrdersState,
    Tokens,
    UsersState,
    fake_orders,
    fake_users,
    gateway_settings,
    serve_gateway,
)

from chassis.testing.servers import serve_in_thread


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="session")
def users_state() -> UsersState:
    return UsersState()


@pytest.fixture(scope="session")
def orders_state() -> OrdersState:
    return OrdersState()


@pytest.fixture(scope="session")
def users_url(tokens: Tokens, users_state: UsersState) -> Iterator[str]:
    with serve_in_thread(fake_users(tokens, users_state), lifespan="off") as url:
        yield url


@pytest.fixture(scope="session")
def orders_url(tokens: Tokens, orders_state: OrdersState) -> Iterator[str]:
    with serve_in_thread(fake_orders(tokens, orders_state), lifespan="off") as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_upstream_records(users_state: UsersState, orders_state: OrdersState) -> None:
    users_state.recorder.clear()
    orders_state.recorder.clear()
    users_state.endless_closed.clear()


@pytest.fixture
def channel_prefix() -> str:
    # Pub/sub channels are global across Redis databases: other suites must not reach us.
    return f"test-events-{uuid.uuid4().hex}"


@pytest.fixture
def start_gateway(
    redis_url: str, users_url: str, orders_url: str, channel_prefix: str
) -> GatewayFactory:
    """``with start_gateway(rate_limit={"requests": 3}) as gateway:`` (nested settings)."""

    def start(**changes: Any) -> AbstractContextManager[Gateway]:
        settings = gateway_settings(
            redis_url=redis_url,
            users_url=users_url,
            orders_url=orders_url,
            channel_prefix=channel_prefix,
            **changes,
        )
        return serve_gateway(settings)

    return start


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> Iterator[Gateway]:
    with start_gateway() as served:
        yield served


@pytest.fixture
async def events(redis_url: str, channel_prefix: str) -> AsyncIterator[Events]:
    publisher = Events(redis_url, channel_prefix)
    try:
        yield publisher
    finally:
        await publisher.aclose()
