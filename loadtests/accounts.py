"""Who a simulated user is: an account from a CSV or a new one, and its client address.

Plain Python (no Locust), shared by the suites and ``loadtests.provision``.
"""

from __future__ import annotations

import csv
import ipaddress
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CSV_FIELDS = ("email", "password")


@dataclass(frozen=True)
class Account:
    email: str
    password: str


def new_account(*, domain: str, password: str) -> Account:
    """A unique address under ``domain`` (``lt-<hex>@``), so load-test users are easy to find."""
    return Account(email=f"lt-{uuid.uuid4().hex[:16]}@{domain}", password=password)


def read_accounts(path: Path) -> list[Account]:
    """Accounts from a CSV with an ``email,password`` header (what provision writes)."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: the CSV needs the columns {', '.join(CSV_FIELDS)}")
        accounts = [Account(email=row["email"], password=row["password"]) for row in reader]
    if not accounts:
        raise ValueError(f"{path}: no accounts")
    return accounts


def write_accounts(path: Path, accounts: Sequence[Account]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_FIELDS)
        writer.writerows((account.email, account.password) for account in accounts)


def rotation(accounts: Sequence[Account], *, start: int) -> Iterator[Account]:
    """Accounts round-robin from ``start``: each worker process starts elsewhere in the list.

    When users outnumber accounts, several users share one; each still logs in on its
    own, so each has its own token family.
    """
    return itertools.islice(itertools.cycle(accounts), start % len(accounts), None)


def client_addresses(cidr: str, *, start: int) -> Iterator[str]:
    """Addresses of ``cidr`` in turn from ``start`` (wrapping), one per simulated user."""
    network = ipaddress.ip_network(cidr, strict=False)
    size = network.num_addresses
    for offset in itertools.count(start):
        yield str(network[offset % size])
