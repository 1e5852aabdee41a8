"""The JWKS cache: TTL, stale fallback while the issuer is down, refresh on unknown kid."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from chassis.auth import (
    JWKSCache,
    KeySetUnavailable,
    TokenVerifier,
    UnknownKeyError,
    render_jwks,
)
from chassis.errors import ServiceUnavailable, Unauthorized


def status_500(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text="boom")


def bad_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"<html>maintenance</html>")


def no_keys(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"keys": []})


def not_a_key_set(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=["not", "a", "set"])


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def client_closed(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("Cannot send a request, as the client has been closed.")


async def test_keys_are_served_from_cache_while_fresh(jwks, issuer, clock, keys) -> None:
    first = await jwks.get_key(keys.rsa.kid)
    clock.advance(299)
    again = await jwks.get_key(keys.rsa.kid)

    assert again is first
    assert issuer.fetches == 1
    assert jwks.status().state == "fresh"


async def test_expired_set_is_refreshed(jwks, issuer, clock, keys) -> None:
    await jwks.get_key(keys.rsa.kid)
    clock.advance(301)

    await jwks.get_key(keys.rsa.kid)
    await jwks.refresh_if_expired()

    assert issuer.fetches == 2
    assert jwks.status().state == "fresh"


async def test_lookups_do_not_wait_for_a_slow_issuer_while_the_set_is_usable(
    jwks, issuer, clock, keys
) -> None:
    await jwks.get_key(keys.rsa.kid)
    clock.advance(301)
    issuer.gate = asyncio.Event()

    async with asyncio.timeout(1):
        key = await jwks.get_key(keys.rsa.kid)

    assert key.key_id == keys.rsa.kid
    assert jwks.status().state == "stale"
    issuer.gate.set()
    await jwks.refresh_if_expired()
    assert jwks.status().state == "fresh"
    assert issuer.fetches == 2


@pytest.mark.parametrize(
    "failure", [None, status_500, bad_json, no_keys, not_a_key_set, timeout, client_closed]
)
async def test_stale_set_verifies_tokens_while_issuer_is_down(
    verifier, issuer, clock, *, mint, keys, failure
) -> None:
    await verifier.verify(mint(keys.rsa))
    clock.advance(301)
    issuer.go_down(failure)

    principal = await verifier.verify(mint(keys.rsa))
    await verifier.jwks.refresh_if_expired()

    assert principal.subject == "subject-1"
    status = verifier.jwks.status()
    assert status.state == "stale"
    assert status.usable
    assert status.last_error


async def test_stale_limit_turns_into_service_unavailable(
    mint, verifier, issuer, clock, keys
) -> None:
    await verifier.verify(mint(keys.rsa))
    issuer.go_down()
    clock.advance(3599)
    await verifier.verify(mint(keys.rsa))

    clock.advance(2)

    with pytest.raises(ServiceUnavailable) as caught:
        await verifier.verify(mint(keys.rsa))
    assert caught.value.status_code == 503
    with pytest.raises(KeySetUnavailable):
        await verifier.jwks.get_key(keys.rsa.kid)
    assert verifier.jwks.status().state == "expired"


async def test_issuer_back_after_stale_limit_restores_verification(
    mint, verifier, issuer, clock, keys
) -> None:
    await verifier.verify(mint(keys.rsa))
    issuer.go_down()
    clock.advance(4000)
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(mint(keys.rsa))

    issuer.come_back()
    clock.advance(10)

    assert (await verifier.verify(mint(keys.rsa))).subject == "subject-1"


async def test_down_issuer_is_not_asked_again_on_every_request(jwks, issuer, clock, keys) -> None:
    await jwks.get_key(keys.rsa.kid)
    clock.advance(301)
    issuer.go_down()

    for _ in range(20):
        await jwks.get_key(keys.rsa.kid)
        await jwks.refresh_if_expired()
        clock.advance(0.1)
    assert issuer.fetches == 2

    clock.advance(10)
    await jwks.get_key(keys.rsa.kid)
    await jwks.refresh_if_expired()
    assert issuer.fetches == 3


async def test_issuer_down_from_the_start_means_unavailable(mint, verifier, issuer, keys) -> None:
    issuer.go_down()

    with pytest.raises(ServiceUnavailable):
        await verifier.verify(mint(keys.rsa))
    assert verifier.jwks.status().state == "empty"
    assert verifier.jwks.status().last_error == "ConnectError"


async def test_a_first_fetch_that_failed_is_retried_after_a_second_not_ten(
    mint, verifier, issuer, clock, keys
) -> None:
    # make compose-smoke: the first token a process saw hit a fetch that timed out, and
    # every request to that process answered 503 until min_refresh_interval had passed.
    issuer.go_down(timeout)
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(mint(keys.rsa))
    issuer.come_back()

    clock.advance(0.5)
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(mint(keys.rsa))
    assert issuer.fetches == 1

    clock.advance(0.6)
    assert (await verifier.verify(mint(keys.rsa))).subject == "subject-1"
    assert issuer.fetches == 2


async def test_a_down_issuer_without_a_usable_set_is_asked_once_a_second(
    jwks, issuer, clock, keys
) -> None:
    issuer.go_down()
    for _ in range(50):
        with pytest.raises(KeySetUnavailable):
            await jwks.get_key(keys.rsa.kid)
        clock.advance(0.1)
    assert issuer.fetches == 5


def test_the_unusable_retry_is_never_longer_than_the_refresh_interval(
    make_cache: Callable[..., JWKSCache],
) -> None:
    cache = make_cache(min_refresh_interval_seconds=0.2, unusable_retry_seconds=5)
    assert cache.unusable_retry_seconds == 0.2


async def test_unknown_kid_refreshes_once_and_rotated_key_becomes_valid(
    mint, verifier, issuer, clock, keys
) -> None:
    await verifier.verify(mint(keys.rsa))
    clock.advance(30)
    issuer.keys.append(keys.rotated)

    principal = await verifier.verify(mint(keys.rotated))

    assert principal.subject == "subject-1"
    assert issuer.fetches == 2


async def test_unknown_kid_triggers_exactly_one_refresh(
    mint, verifier, issuer, clock, keys
) -> None:
    await verifier.verify(mint(keys.rsa))
    clock.advance(30)

    with pytest.raises(Unauthorized):
        await verifier.verify(mint(keys.rotated))

    assert issuer.fetches == 2


async def test_random_kids_within_min_refresh_interval_do_not_fetch(
    jwks, issuer, clock, keys
) -> None:
    await jwks.get_key(keys.rsa.kid)
    clock.advance(30)
    with pytest.raises(UnknownKeyError):
        await jwks.get_key("random-0")
    assert issuer.fetches == 2

    for _ in range(50):
        clock.advance(0.1)
        with pytest.raises(UnknownKeyError):
            await jwks.get_key(uuid.uuid4().hex)

    assert issuer.fetches == 2
    clock.advance(10)
    with pytest.raises(UnknownKeyError):
        await jwks.get_key("random-after-interval")
    assert issuer.fetches == 3


async def test_concurrent_unknown_kid_lookups_share_one_fetch(
    mint, verifier, issuer, clock, keys
) -> None:
    await verifier.verify(mint(keys.rsa))
    clock.advance(30)
    issuer.keys.append(keys.rotated)
    token = mint(keys.rotated)

    principals = await asyncio.gather(*(verifier.verify(token) for _ in range(100)))

    assert {principal.subject for principal in principals} == {"subject-1"}
    assert issuer.fetches == 2


async def test_concurrent_first_lookups_share_one_fetch(jwks, issuer, keys) -> None:
    keys = await asyncio.gather(*(jwks.get_key(keys.rsa.kid) for _ in range(100)))

    assert len({id(key) for key in keys}) == 1
    assert issuer.fetches == 1


async def test_concurrent_unknown_kids_share_one_failed_lookup(jwks, issuer) -> None:
    results = await asyncio.gather(
        *(jwks.get_key(f"unknown-{n}") for n in range(100)), return_exceptions=True
    )

    assert all(isinstance(result, UnknownKeyError) for result in results)
    assert issuer.fetches == 1


@pytest.mark.parametrize(
    "unusable",
    [
        pytest.param({"use": "enc"}, id="encryption-key"),
        pytest.param({"key_ops": ["encrypt"]}, id="key-ops-without-verify"),
        pytest.param({"alg": "RS512"}, id="algorithm-not-allowed"),
        pytest.param({"alg": ["RS256"]}, id="algorithm-not-a-string"),
        pytest.param({"kid": ""}, id="empty-kid"),
        pytest.param({"d": "AQAB"}, id="private-member"),
        pytest.param({"n": "!!!"}, id="malformed-modulus"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, id="symmetric"),
    ],
)
async def test_only_signature_keys_with_allowed_algorithms_are_kept(
    jwks, issuer, unusable, keys
) -> None:
    member = {**keys.rotated.public_jwk(), **unusable}
    issuer.keys = [keys.rsa, member, "not-a-key"]

    with pytest.raises(UnknownKeyError):
        await jwks.get_key(member["kid"] or "rsa-2")
    assert (await jwks.get_key(keys.rsa.kid)).key_id == keys.rsa.kid
    assert jwks.status().key_count == 1


async def test_key_without_alg_gets_the_default_for_its_type(jwks, issuer, keys) -> None:
    member = keys.ec.public_jwk()
    del member["alg"]
    issuer.keys = [member]

    key = await jwks.get_key(keys.ec.kid)

    assert key.algorithm_name == "ES256"


async def test_status_reports_state_age_and_count(jwks, issuer, clock, keys) -> None:
    assert jwks.status().as_dict() == {
        "state": "empty",
        "age_seconds": None,
        "keys": 0,
        "last_error": None,
    }
    await jwks.refresh_if_expired()
    clock.advance(1.5)

    assert jwks.status().as_dict() == {
        "state": "fresh",
        "age_seconds": 1.5,
        "keys": 2,
        "last_error": None,
    }


@pytest.mark.parametrize(
    "options",
    [
        {"ttl_seconds": 0},
        {"timeout_seconds": 0},
        {"stale_seconds": -1},
        {"min_refresh_interval_seconds": -1},
        {"unusable_retry_seconds": -1},
    ],
)
def test_nonsense_options_are_refused(make_cache: Callable[..., JWKSCache], options) -> None:
    with pytest.raises(ValueError, match="must be"):
        make_cache(**options)


def test_stale_limit_is_never_shorter_than_the_ttl(make_cache: Callable[..., JWKSCache]) -> None:
    assert make_cache(ttl_seconds=300, stale_seconds=0).max_age_seconds == 300
    assert make_cache().max_age_seconds == 3600


async def test_real_issuer_outage_is_bridged_by_the_stale_set(
    mint, real_issuer, clock, keys
) -> None:
    async with httpx.AsyncClient() as client:
        jwks = JWKSCache(real_issuer.url, http_client=client, clock=clock)
        verifier = TokenVerifier(jwks, issuer="https://issuer.test", audience="chassis-tests")

        assert (await verifier.verify(mint(keys.rsa))).subject == "subject-1"
        clock.advance(30)
        real_issuer.keys.append(keys.rotated)
        assert (await verifier.verify(mint(keys.rotated, kind="service"))).is_service
        assert real_issuer.fetches == 2

        real_issuer.stop()
        clock.advance(301)
        principal = await verifier.verify(mint(keys.ec, scopes=["things:read"]))
        await jwks.refresh_if_expired()
        assert principal.scopes == {"things:read"}
        assert jwks.status().state == "stale"
        assert jwks.status().last_error is not None

        clock.advance(3600)
        with pytest.raises(ServiceUnavailable):
            await verifier.verify(mint(keys.rsa))


class KeyStoreLoader:
    """An in-process key source, as an issuer verifying its own tokens has."""

    def __init__(self, keys: list) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> dict:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return render_jwks(self.keys)


async def test_a_loader_replaces_http_with_the_same_refresh_rules(mint, clock, keys) -> None:
    loader = KeyStoreLoader([keys.rsa])
    jwks = JWKSCache("in-process", loader=loader, clock=clock)
    verifier = TokenVerifier(jwks, issuer="https://issuer.test", audience="chassis-tests")

    assert (await verifier.verify(mint(keys.rsa))).subject == "subject-1"
    clock.advance(30)
    loader.keys.append(keys.rotated)
    assert (await verifier.verify(mint(keys.rotated))).subject == "subject-1"
    assert loader.calls == 2

    loader.failure = RuntimeError("database down")
    clock.advance(301)
    assert (await verifier.verify(mint(keys.rsa))).subject == "subject-1"
    await jwks.refresh_if_expired()
    assert jwks.status().state == "stale"
    assert jwks.status().last_error == "RuntimeError"


async def test_a_loader_that_hangs_times_out_into_an_unavailable_set(mint, clock, keys) -> None:
    loader = KeyStoreLoader([keys.rsa])
    loader.gate = asyncio.Event()
    jwks = JWKSCache("in-process", loader=loader, clock=clock, timeout_seconds=0.01)

    with pytest.raises(KeySetUnavailable):
        await jwks.get_key(keys.rsa.kid)
    assert jwks.status().last_error == "loader timed out"


@pytest.mark.parametrize("sources", ["neither", "both"])
async def test_exactly_one_key_source_is_required(sources, keys) -> None:
    loader = KeyStoreLoader([keys.rsa])
    async with httpx.AsyncClient() as client:
        options = {} if sources == "neither" else {"http_client": client, "loader": loader}
        with pytest.raises(ValueError, match="exactly one"):
            JWKSCache("https://issuer.test/.well-known/jwks.json", **options)


async def test_closing_waits_for_the_refresh_in_flight(clock, keys) -> None:
    loader = KeyStoreLoader([keys.rsa])
    jwks = JWKSCache("in-process", loader=loader, clock=clock)
    await jwks.get_key(keys.rsa.kid)
    clock.advance(301)
    loader.gate = asyncio.Event()
    # Served from the stale set while the refresh runs in the background.
    await jwks.get_key(keys.rsa.kid)

    closing = asyncio.create_task(jwks.aclose())
    await asyncio.sleep(0.01)
    assert not closing.done()
    loader.gate.set()
    await closing

    assert jwks.status().state == "fresh"
    await jwks.aclose()
