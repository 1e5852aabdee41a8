"""The service-token provider against a fake users token endpoint on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from worker_fakes import CLIENT_ID, CLIENT_SECRET, FakeUsers

from chassis.http import UpstreamClient
from chassis.settings import UpstreamSettings
from chassis.testing.clock import ManualClock
from worker.tokens import ServiceTokenProvider, TokenUnavailable

MakeProvider = Callable[..., ServiceTokenProvider]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_provider(users_url: str, clock: ManualClock) -> AsyncIterator[MakeProvider]:
    clients: list[UpstreamClient] = []

    def make(*, secret: str = CLIENT_SECRET, margin: float = 30.0) -> ServiceTokenProvider:
        client = UpstreamClient(
            "users",
            UpstreamSettings(
                base_url=users_url, retry_attempts=2, retry_backoff_initial_seconds=0.001
            ),
        )
        clients.append(client)
        return ServiceTokenProvider(
            client,
            client_id=CLIENT_ID,
            client_secret=SecretStr(secret),
            refresh_margin_seconds=margin,
            clock=clock,
        )

    yield make
    for client in clients:
        await client.aclose()


async def test_a_token_is_fetched_once_and_reused(
    make_provider: MakeProvider, fake_users: FakeUsers
) -> None:
    provider = make_provider()

    first = await provider.token()
    second = await provider.token()

    assert first == second == "svc-token-1"
    assert fake_users.token_requests == 1


async def test_concurrent_callers_share_one_fetch(
    make_provider: MakeProvider, fake_users: FakeUsers
) -> None:
    provider = make_provider()

    tokens = await asyncio.gather(*(provider.token() for _ in range(10)))

    assert set(tokens) == {"svc-token-1"}
    assert fake_users.token_requests == 1


async def test_a_token_is_replaced_shortly_before_it_expires(
    make_provider: MakeProvider, fake_users: FakeUsers, clock: ManualClock
) -> None:
    fake_users.expires_in = 60
    provider = make_provider(margin=30)
    await provider.token()

    clock.advance(29)
    assert await provider.token() == "svc-token-1"
    clock.advance(2)
    assert await provider.token() == "svc-token-2"
    assert fake_users.token_requests == 2


async def test_a_token_shorter_lived_than_the_margin_is_fetched_each_time(
    make_provider: MakeProvider, fake_users: FakeUsers
) -> None:
    fake_users.expires_in = 10
    provider = make_provider(margin=30)

    assert [await provider.token() for _ in range(2)] == ["svc-token-1", "svc-token-2"]


async def test_a_refused_token_is_replaced_once_for_all_callers(
    make_provider: MakeProvider, fake_users: FakeUsers
) -> None:
    provider = make_provider()
    rejected = await provider.token()

    replacements = await asyncio.gather(*(provider.refresh(rejected) for _ in range(5)))

    assert set(replacements) == {"svc-token-2"}
    assert fake_users.token_requests == 2
    assert await provider.token() == "svc-token-2"


async def test_refused_credentials_raise_token_unavailable(make_provider: MakeProvider) -> None:
    provider = make_provider(secret="not-the-secret")

    with pytest.raises(TokenUnavailable) as caught:
        await provider.token()

    assert caught.value.status == 401
    assert str(caught.value) == "service token unavailable (401): Invalid client credentials"


@pytest.mark.parametrize(
    ("setup", "status", "detail"),
    [
        ({"fail_with": [503, 503]}, 503, "Unavailable"),
        ({"body": b'{"access_token": ""}'}, 200, "malformed token answer"),
        ({"body": b"not json"}, 200, "malformed token answer"),
    ],
)
async def test_an_unusable_answer_raises_token_unavailable(
    make_provider: MakeProvider,
    fake_users: FakeUsers,
    setup: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    fake_users.fail_with.extend(setup.get("fail_with", []))
    fake_users.body = setup.get("body")
    provider = make_provider()

    with pytest.raises(TokenUnavailable) as caught:
        await provider.token()

    assert (caught.value.status, caught.value.detail) == (status, detail)
    assert provider.snapshot()["last_success_seconds_ago"] is None


async def test_the_snapshot_shows_freshness_but_never_the_token(
    make_provider: MakeProvider, clock: ManualClock
) -> None:
    provider = make_provider()
    assert provider.snapshot() == {
        "client_id": CLIENT_ID,
        "last_success_seconds_ago": None,
        "expires_in_seconds": None,
    }
    token = await provider.token()
    clock.advance(100)

    snapshot = provider.snapshot()

    assert snapshot == {
        "client_id": CLIENT_ID,
        "last_success_seconds_ago": 100.0,
        "expires_in_seconds": 200.0,
    }
    assert token not in str(snapshot)
