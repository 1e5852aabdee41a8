"""Verified tokens remembered: the same token is checked once, until it expires or keys change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from chassis.auth import JWKSCache, TokenVerifier
from chassis.errors import Unauthorized
from chassis.testing.clock import ManualClock

from .conftest import AUDIENCE, ISSUER, FakeIssuer, Keys


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the verifier makes (jwt.decode), by token."""
    checked: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr("chassis.auth.verify.jwt.decode", counting_decode)
    return checked


def verifier_for(jwks: JWKSCache, **options: Any) -> TokenVerifier:
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE, **options)


async def test_a_token_seen_before_is_not_checked_again(
    jwks: JWKSCache, mint: Callable[..., str], keys: Keys, decodes: list[str]
) -> None:
    verifier = verifier_for(jwks)
    token = mint(keys.rsa, scopes=["orders:read"])
    principals = [await verifier.verify(token) for _ in range(3)]

    assert decodes == [token]
    assert principals[0] == principals[1] == principals[2]
    assert principals[0].subject == "subject-1"


async def test_a_remembered_token_is_checked_again_once_it_has_expired(
    jwks: JWKSCache, mint: Callable[..., str], keys: Keys, decodes: list[str]
) -> None:
    wall = ManualClock(time.time())
    verifier = verifier_for(jwks, leeway_seconds=5, clock=wall)
    token = mint(keys.rsa, ttl_seconds=60)
    await verifier.verify(token)
    wall.advance(60 + 5 - 1)
    await verifier.verify(token)
    assert len(decodes) == 1
    wall.advance(2)  # past exp + leeway: no longer taken from memory
    await verifier.verify(token)
    assert len(decodes) == 2


async def test_a_remembered_token_is_refused_once_its_key_is_retired(
    jwks: JWKSCache,
    mint: Callable[..., str],
    keys: Keys,
    issuer: FakeIssuer,
    clock: ManualClock,
) -> None:
    verifier = verifier_for(jwks)
    token = mint(keys.rsa)
    await verifier.verify(token)

    issuer.keys = [keys.rotated]  # the issuer rotated and retired rsa-1
    clock.advance(jwks.ttl_seconds + 1)
    # Stale set: still trusted while the refresh it started runs in the background.
    await verifier.verify(token)
    await jwks.aclose()  # the refresh has landed: rsa-1 is gone
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_the_memory_is_bounded_oldest_first(
    jwks: JWKSCache, mint: Callable[..., str], keys: Keys, decodes: list[str]
) -> None:
    verifier = verifier_for(jwks, cache_size=2)
    first, second, third = (mint(keys.rsa, subject=f"subject-{n}") for n in range(3))
    for token in (first, second, third, third, second, first):
        await verifier.verify(token)
    # first fell out when third came in; second and third were still remembered.
    assert decodes == [first, second, third, first]


async def test_a_refused_token_is_never_remembered(
    jwks: JWKSCache, mint: Callable[..., str], keys: Keys, decodes: list[str]
) -> None:
    verifier = verifier_for(jwks)
    token = mint(keys.rsa, audience="someone-else")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    assert decodes == [token, token]


def test_cache_size_must_not_be_negative(jwks: JWKSCache) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        verifier_for(jwks, cache_size=-1)
