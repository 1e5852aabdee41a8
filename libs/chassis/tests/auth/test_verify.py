"""Token verification: what is accepted, and every way a bad token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from chassis.auth import TokenVerifier, generate_rsa_key
from chassis.errors import Unauthorized


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims_for(verifier: TokenVerifier, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": verifier.issuer,
        "aud": verifier.audience,
        "sub": "subject-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def encode(key: Any, claims: dict[str, Any], **headers: Any) -> str:
    headers.setdefault("kid", key.kid)
    headers = {name: value for name, value in headers.items() if value is not None}
    # Through JWS directly: jwt.encode refuses some of the malformed claims we need.
    payload = json.dumps(claims).encode()
    return jwt.PyJWS().encode(payload, key.private_key, algorithm=key.algorithm, headers=headers)


async def refused(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    error = caught.value
    assert error.status_code == 401
    assert not token or token not in str(error.detail)
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    return error


async def test_valid_rs256_token_gives_principal_with_scopes(verifier, mint, keys) -> None:
    token = mint(keys.rsa, scopes=["things:read", "things:write"], token_id="t-1")

    principal = await verifier.verify(token)

    assert principal.subject == "subject-1"
    assert principal.scopes == {"things:read", "things:write"}
    assert principal.kind == "user"
    assert principal.token_id == "t-1"
    assert principal.claims["iss"] == "https://issuer.test"


async def test_valid_es256_service_token_is_accepted(verifier, mint, keys) -> None:
    principal = await verifier.verify(mint(keys.ec, subject="worker", kind="service"))

    assert principal.subject == "worker"
    assert principal.kind == "service"
    assert principal.is_service


async def test_audience_list_containing_ours_is_accepted(verifier, mint, keys) -> None:
    token = mint(keys.rsa, audience=["other", verifier.audience])

    assert (await verifier.verify(token)).subject == "subject-1"


async def test_expired_token_is_refused(verifier, mint, keys) -> None:
    token = mint(keys.rsa, now=time.time() - 400, ttl_seconds=300)

    error = await refused(verifier, token)

    assert error.detail == "The access token has expired."


async def test_token_expired_within_leeway_is_accepted(verifier, mint, keys) -> None:
    token = mint(keys.rsa, now=time.time() - 310, ttl_seconds=300)

    assert (await verifier.verify(token)).subject == "subject-1"


async def test_token_not_yet_valid_is_refused(verifier, keys) -> None:
    now = int(time.time())
    await refused(verifier, encode(keys.rsa, claims_for(verifier, nbf=now + 120)))


async def test_token_issued_in_the_future_is_refused(verifier, mint, keys) -> None:
    await refused(verifier, mint(keys.rsa, now=time.time() + 120))


async def test_token_from_another_issuer_is_refused(verifier, keys) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier, iss="https://evil.test")))


async def test_token_for_another_audience_is_refused(verifier, keys) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier, aud="another-service")))


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud"])
async def test_token_missing_a_required_claim_is_refused(verifier, keys, claim) -> None:
    claims = claims_for(verifier)
    del claims[claim]

    await refused(verifier, encode(keys.rsa, claims))


@pytest.mark.parametrize("subject", ["", 42])
async def test_token_with_a_blank_or_non_string_subject_is_refused(verifier, keys, subject) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier, sub=subject)))


async def test_token_with_an_unknown_kind_is_refused(verifier, keys) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier, kind="admin")))


async def test_alg_none_token_is_refused(verifier, keys) -> None:
    header = segment({"alg": "none", "typ": "JWT", "kid": keys.rsa.kid})
    token = f"{header}.{segment(claims_for(verifier))}."

    await refused(verifier, token)


async def test_hs256_token_signed_with_the_public_key_is_refused(verifier, issuer, keys) -> None:
    public_pem = keys.rsa.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': keys.rsa.kid})}."
        f"{segment(claims_for(verifier))}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    await refused(verifier, f"{signing_input}.{b64(signature)}")
    assert issuer.fetches == 0


async def test_token_without_kid_is_refused(verifier, keys) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier), kid=None))


async def test_tampered_payload_is_refused(verifier, mint, keys) -> None:
    header, _, signature = mint(keys.rsa).split(".")
    forged = segment({**claims_for(verifier), "scope": "admin"})

    await refused(verifier, f"{header}.{forged}.{signature}")


async def test_token_signed_by_a_stranger_under_a_known_kid_is_refused(
    verifier, mint, keys
) -> None:
    stranger = generate_rsa_key(keys.rsa.kid)

    await refused(verifier, mint(stranger))


async def test_token_whose_alg_does_not_match_its_key_is_refused(verifier, keys) -> None:
    token = encode(keys.rsa, claims_for(verifier), kid=keys.ec.kid)

    await refused(verifier, token)


async def test_token_with_an_unknown_kid_is_refused(verifier, mint, keys) -> None:
    await refused(verifier, mint(keys.rotated))


@pytest.mark.parametrize(
    "token", ["", "garbage", "a.b.c", "e30.e30.", "W10.e30.sig", "eyJhbGciOiJSUzI1NiJ9..."]
)
async def test_malformed_token_is_refused(verifier, token) -> None:
    await refused(verifier, token)


async def test_token_with_rs512_is_refused_when_only_rs256_and_es256_are_allowed(
    verifier, keys
) -> None:
    token = jwt.encode(
        claims_for(verifier), keys.rsa.private_key, algorithm="RS512", headers={"kid": "rsa-1"}
    )

    await refused(verifier, token)


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_verifier_refuses_to_trust_symmetric_or_no_algorithms(jwks, algorithms) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier(jwks, issuer="i", audience="a", algorithms=algorithms)


def test_verifier_refuses_negative_leeway(jwks) -> None:
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier(jwks, issuer="i", audience="a", leeway_seconds=-1)


@pytest.mark.parametrize(
    "overrides",
    [
        {"iat": "yesterday"},
        {"exp": "never"},
        {"nbf": []},
        {"aud": 5},
        {"iss": ["https://issuer.test"]},
        {"sub": {"id": 1}},
        {"jti": 7},
        {"scope": {"a": 1}},
    ],
)
async def test_signed_token_with_malformed_claim_values_is_refused(
    verifier, keys, overrides
) -> None:
    await refused(verifier, encode(keys.rsa, claims_for(verifier, **overrides)))
