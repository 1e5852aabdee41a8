"""Create load-test accounts ahead of a run and write them as a CSV for ``--accounts``.

    python -m loadtests.provision --host https://staging.example.com --count 200 \\
        --out reports/accounts.csv

With accounts made beforehand a run measures logins, not sign-ups, and leaves no new
users behind each time. Sign-ups go one at a time and honour 429 Retry-After, so the
target's per-IP limits pace this command instead of failing it; it stops after
``--timeout`` seconds with the accounts made so far written out.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from loadtests.accounts import Account, new_account, write_accounts

MAX_PAUSE_SECONDS = 60.0


def provision(
    client: httpx.Client,
    *,
    count: int,
    domain: str,
    password: str,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Account]:
    """Sign up to ``count`` accounts through ``client`` before ``deadline`` (monotonic)."""
    made: list[Account] = []
    while len(made) < count and time.monotonic() < deadline:
        account = new_account(domain=domain, password=password)
        response = client.post(
            "/api/v1/auth/signup", json={"email": account.email, "password": account.password}
        )
        if response.status_code == 201:
            made.append(account)
            continue
        if response.status_code == 429:
            pause = float(response.headers.get("Retry-After", "1"))
            sleep(min(max(pause, 0.1), MAX_PAUSE_SECONDS, max(deadline - time.monotonic(), 0)))
            continue
        raise RuntimeError(f"sign-up refused: HTTP {response.status_code} {response.text[:200]}")
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.provision", description=__doc__)
    parser.add_argument("--host", required=True, help="Base URL of the gateway.")
    parser.add_argument("--count", type=int, required=True, help="Accounts to create.")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write.")
    parser.add_argument("--password", default="load-test correct horse battery")
    parser.add_argument("--email-domain", default="loadtest.example.com")
    parser.add_argument("--timeout", type=float, default=600.0, help="Give up after (600 s).")
    args = parser.parse_args(argv)
    with httpx.Client(base_url=args.host.rstrip("/"), timeout=30.0) as client:
        made = provision(
            client,
            count=args.count,
            domain=args.email_domain,
            password=args.password,
            deadline=time.monotonic() + args.timeout,
        )
    write_accounts(args.out, made)
    print(f"== {len(made)} of {args.count} accounts written to {args.out}")
    return 0 if len(made) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
