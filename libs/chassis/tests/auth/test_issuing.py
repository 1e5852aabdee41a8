"""The issuing side: keys, the published JWKS and signed tokens."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chassis.auth import (
    SigningKey,
    generate_ec_key,
    generate_rsa_key,
    jwk_thumbprint,
    render_jwks,
    sign_token,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_jwks_never_contains_private_members(keys) -> None:
    private_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(keys.rotated.private_key, as_dict=True)
    private_jwk["kid"] = "retired"
    document = render_jwks([keys.rsa, keys.ec, private_jwk])

    text = json.dumps(document)
    for member in document["keys"]:
        assert not PRIVATE_MEMBERS & set(member)
        assert member["use"] == "sig"
    assert [member["kid"] for member in document["keys"]] == ["rsa-1", "ec-1", "retired"]
    assert '"d"' not in text
    assert '"p"' not in text
    assert '"q"' not in text


def test_jwks_leaves_out_symmetric_and_kidless_keys(keys) -> None:
    public = keys.rsa.public_jwk()
    del public["kid"]
    document = render_jwks([{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, public])

    assert document == {"keys": []}


def test_public_jwk_names_kid_alg_and_use(keys) -> None:
    assert keys.rsa.public_jwk() == {
        "kty": "RSA",
        "n": keys.rsa.public_jwk()["n"],
        "e": "AQAB",
        "kid": "rsa-1",
        "alg": "RS256",
        "use": "sig",
    }
    ec_jwk = keys.ec.public_jwk()
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["alg"]) == ("EC", "P-256", "ES256")


def test_thumbprint_matches_rfc_7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
            "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
            "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrd"
            "kt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKn"
            "qDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }

    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_generated_key_kid_defaults_to_its_thumbprint() -> None:
    key = generate_ec_key()

    assert key.kid == jwk_thumbprint(key.public_jwk())


def test_private_pem_round_trip_keeps_kid_and_signature(keys) -> None:
    loaded = SigningKey.from_private_pem(keys.rsa.to_private_pem(), "rsa-1")
    token = sign_token(loaded, subject="s", issuer="i", audience="a")

    claims = jwt.decode(token, jwt.PyJWK(keys.rsa.public_jwk()), algorithms=["RS256"], audience="a")
    assert claims["sub"] == "s"
    assert loaded.kid == "rsa-1"
    assert loaded.algorithm == "RS256"


def test_encrypted_pem_needs_its_password(keys) -> None:
    pem = keys.ec.to_private_pem(password=b"correct horse")

    assert b"ENCRYPTED" in pem
    loaded = SigningKey.from_private_pem(pem.decode(), password=b"correct horse")
    assert loaded.algorithm == "ES256"
    assert loaded.kid == jwk_thumbprint(keys.ec.public_jwk())
    with pytest.raises(TypeError):
        SigningKey.from_private_pem(pem)


@pytest.mark.parametrize(("algorithm", "curve"), [("ES384", "P-384"), ("ES512", "P-521")])
def test_ec_keys_on_larger_curves(algorithm, curve) -> None:
    key = generate_ec_key("k", algorithm=algorithm)

    assert key.public_jwk()["crv"] == curve
    assert SigningKey.from_private_pem(key.to_private_pem(), "k").algorithm == algorithm


def test_sign_token_writes_header_and_registered_claims(keys) -> None:
    now = int(time.time())
    token = sign_token(
        keys.rsa,
        subject="user-7",
        issuer="https://issuer.test",
        audience=["a", "b"],
        scopes=["things:read", "things:write", "things:read"],
        kind="service",
        ttl_seconds=120,
        extra_claims={"tenant": "t-1"},
        now=now,
    )

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
    assert claims["iat"] == claims["nbf"] == now
    assert claims["exp"] == now + 120
    assert claims["aud"] == ["a", "b"]
    assert claims["scope"] == "things:read things:write"
    assert claims["kind"] == "service"
    assert claims["tenant"] == "t-1"
    assert len(claims["jti"]) == 32


def test_sign_token_without_scopes_writes_no_scope_claim(keys) -> None:
    from datetime import UTC, datetime

    token = sign_token(keys.ec, subject="s", issuer="i", audience="a", now=datetime.now(UTC))

    claims = jwt.decode(token, options={"verify_signature": False})
    assert "scope" not in claims
    assert claims["kind"] == "user"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"extra_claims": {"sub": "someone-else"}}, id="reserved-claim"),
        pytest.param({"scopes": ["two words"]}, id="scope-with-space"),
        pytest.param({"scopes": [""]}, id="empty-scope"),
        pytest.param({"ttl_seconds": 0}, id="no-lifetime"),
        pytest.param({"subject": ""}, id="empty-subject"),
    ],
)
def test_sign_token_refuses_nonsense(keys, options) -> None:
    arguments = {"subject": "s", "issuer": "i", "audience": "a", **options}

    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        sign_token(keys.rsa, **arguments)


def test_weak_or_mismatched_keys_are_refused(keys) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    p384 = ec.generate_private_key(ec.SECP384R1())

    with pytest.raises(ValueError, match="2048"):
        generate_rsa_key(bits=1024)
    with pytest.raises(ValueError, match="2048"):
        SigningKey("k", "RS256", small)
    with pytest.raises(ValueError, match="RSA"):
        SigningKey("k", "RS256", keys.ec.private_key)
    with pytest.raises(ValueError, match="curve"):
        SigningKey("k", "ES256", p384)
    with pytest.raises(ValueError, match="kid"):
        SigningKey("", "RS256", keys.rsa.private_key)
    with pytest.raises(ValueError, match="EC algorithm"):
        generate_ec_key(algorithm="RS256")


def test_signing_key_repr_hides_the_private_key(keys) -> None:
    assert "private" not in repr(keys.rsa)


def test_only_rsa_and_nist_curve_keys_can_be_loaded() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    def pem(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    with pytest.raises(TypeError, match="RSA and EC"):
        SigningKey.from_private_pem(pem(ed25519.Ed25519PrivateKey.generate()), "k")
    with pytest.raises(ValueError, match="unsupported curve"):
        SigningKey.from_private_pem(pem(ec.generate_private_key(ec.SECP256K1())), "k")
