"""``users-rotate-keys``: make a new active signing key; the previous one stays published.

Without ``USERS_SIGNING__PRIVATE_KEY_PEM`` the keys live in the ``signing_keys``
table: this generates a new one there and retires the current one, whose
public key stays in the JWKS until the tokens it signed have expired (running
processes pick the new key up within ``USERS_SIGNING__KEY_REFRESH_SECONDS``).
With the variable set, the key is the secret's: rotate by replacing the secret
(``--print-pem`` makes a new key to put there) and rolling the deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from chassis.auth import generate_rsa_key
from chassis.database import Database, utc_now
from chassis.settings import load_settings
from users.keys.service import prune_retired_keys, rotate_signing_key
from users.settings import UsersSettings

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="users-rotate-keys",
        description="Make a new active token signing key; the previous one stays published "
        "until its tokens have expired.",
    )
    parser.add_argument(
        "--print-pem",
        action="store_true",
        help="only print a new PKCS#8 PEM private key (for USERS_SIGNING__PRIVATE_KEY_PEM)",
    )
    return parser


async def rotate(settings: UsersSettings) -> str:
    """Rotate the key in the table; returns the new kid."""
    database = Database.from_settings(settings)
    try:
        async with database.session() as session:
            now = utc_now()
            await prune_retired_keys(
                session, now=now, publish_seconds=settings.retired_key_publish_seconds
            )
            key = await rotate_signing_key(session, now=now, bits=settings.signing.rsa_bits)
    finally:
        await database.dispose()
    return key.kid


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(UsersSettings)
    if args.print_pem:
        sys.stdout.write(generate_rsa_key(bits=settings.signing.rsa_bits).to_private_pem().decode())
        return 0
    pem = settings.signing.private_key_pem
    if pem is not None and pem.get_secret_value().strip():
        sys.stderr.write(
            "users-rotate-keys: the signing key comes from USERS_SIGNING__PRIVATE_KEY_PEM; "
            "rotate it by replacing that secret (users-rotate-keys --print-pem makes a new key) "
            "and rolling the deployment\n"
        )
        return EXIT_USAGE
    kid = asyncio.run(rotate(settings))
    sys.stdout.write(
        f"new active signing key {kid}; the previous key stays published for "
        f"{settings.retired_key_publish_seconds:g} s\n"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - run through the console script
    raise SystemExit(main())
