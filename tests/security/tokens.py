"""Mint access tokens, valid and forged, with the platform's own signing key.

`claims_for` gives the claims the users service itself would issue; an attack
changes exactly one thing about a valid token (its header, one claim, its
signature), so each refusal can only come from the check that attack targets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from chassis.auth import SigningKey, generate_rsa_key

USER_SCOPES = "orders:read orders:write profile"
#: Far outside the verifiers' 30 s leeway.
SKEW = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_for(subject: str, *, scope: str = USER_SCOPES, kind: str = "user") -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "chassis-users",
        "aud": "chassis-api",
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "kind": kind,
        "scope": scope,
    }


def sign(key: SigningKey, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
    return jwt.encode(
        dict(claims),
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": kid or key.kid, "typ": "JWT"},
    )


def alg_none(key: SigningKey, claims: Mapping[str, Any]) -> str:
    header = encode_segment({"alg": "none", "typ": "JWT", "kid": key.kid})
    return f"{header}.{encode_segment(claims)}."


def hs256_with_public_key(key: SigningKey, claims: Mapping[str, Any]) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the published public key."""
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{encode_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{encode_segment(claims)}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(key: SigningKey, claims: Mapping[str, Any], **changes: Any) -> str:
    """A validly signed token whose payload is then changed, signature kept."""
    header, _, signature = sign(key, claims).split(".")
    return f"{header}.{encode_segment({**claims, **changes})}.{signature}"


def attack_tokens(key: SigningKey, subject: str) -> dict[str, str]:
    """Every forged or unacceptable token, by name; each is refused with 401."""
    valid = claims_for(subject)
    now = int(time.time())
    return {
        "alg_none": alg_none(key, valid),
        "hs256_signed_with_public_key": hs256_with_public_key(key, valid),
        "expired": sign(
            key, {**valid, "iat": now - 2 * SKEW, "nbf": now - 2 * SKEW, "exp": now - SKEW}
        ),
        "not_yet_valid": sign(
            key, {**valid, "iat": now + SKEW, "nbf": now + SKEW, "exp": now + 2 * SKEW}
        ),
        "wrong_audience": sign(key, {**valid, "aud": "another-api"}),
        "wrong_issuer": sign(key, {**valid, "iss": "https://evil.example.com"}),
        "unknown_kid": sign(generate_rsa_key(), valid),
        "known_kid_other_key": sign(generate_rsa_key(), valid, kid=key.kid),
        "tampered_payload": tampered(key, valid, scope=f"{USER_SCOPES} users:admin orders:admin"),
        "no_expiry": sign(key, {name: value for name, value in valid.items() if name != "exp"}),
    }
