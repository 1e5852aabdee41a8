"""Accounts and client addresses for simulated users; provisioning through a real app."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from loadtests.accounts import (
    Account,
    client_addresses,
    new_account,
    read_accounts,
    rotation,
    write_accounts,
)
from loadtests.provision import provision


def test_new_accounts_are_unique_and_recognisable() -> None:
    accounts = [new_account(domain="loadtest.example.com", password="pw") for _ in range(100)]
    assert len({account.email for account in accounts}) == 100
    assert all(a.email.startswith("lt-") for a in accounts)
    assert all(a.email.endswith("@loadtest.example.com") for a in accounts)


def test_accounts_round_trip_through_the_csv(tmp_path: Path) -> None:
    accounts = [Account("a@example.com", "pw, with comma"), Account("b@example.com", "pw2")]
    path = tmp_path / "nested" / "accounts.csv"
    write_accounts(path, accounts)
    assert path.read_text().splitlines()[0] == "email,password"
    assert read_accounts(path) == accounts


def test_a_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("user,secret\na,b\n")
    with pytest.raises(ValueError, match="email, password"):
        read_accounts(path)


def test_an_empty_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("email,password\n")
    with pytest.raises(ValueError, match="no accounts"):
        read_accounts(path)


def test_accounts_are_taken_round_robin_from_a_start() -> None:
    accounts = [Account(f"{n}@example.com", "pw") for n in range(3)]
    taken = list(itertools.islice(rotation(accounts, start=4), 5))
    assert [a.email for a in taken] == [f"{n}@example.com" for n in (1, 2, 0, 1, 2)]


def test_client_addresses_come_from_the_range_in_turn_and_wrap() -> None:
    addresses = list(itertools.islice(client_addresses("198.18.0.0/30", start=2), 4))
    assert addresses == ["198.18.0.2", "198.18.0.3", "198.18.0.0", "198.18.0.1"]


def test_provisioning_honours_retry_after_and_stops_at_the_count() -> None:
    seen: list[str] = []
    pauses: list[float] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        # Every third sign-up is refused once by the per-IP limit.
        if len(seen) % 3 == 0:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(201, json={"id": str(len(seen))})

    with httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(gateway)) as client:
        made = provision(
            client, count=4, domain="example.com", password="pw", deadline=1e12, sleep=pauses.append
        )
    assert len(made) == 4
    assert set(seen) == {"/api/v1/auth/signup"}
    assert len(seen) == 5
    assert pauses == [2.0]


def test_provisioning_stops_on_a_refusal_other_than_a_rate_limit() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"title": "Unprocessable"})

    with (
        httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(gateway)) as client,
        pytest.raises(RuntimeError, match="HTTP 422"),
    ):
        provision(client, count=1, domain="example.com", password="pw", deadline=1e12)
