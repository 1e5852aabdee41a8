"""The issuing side, for the identity service: signing keys, the JWKS document, tokens.

Tokens carry a ``kid`` header naming the key in the published JWKS, the
registered claims (iss, sub, aud, iat, nbf, exp, jti), the OAuth2 ``scope``
string and the ``kind`` claim that `chassis.auth.principal` reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from chassis.auth.jwks import PRIVATE_MEMBERS
from chassis.auth.principal import KIND_CLAIM, PrincipalKind

SigningAlgorithm: TypeAlias = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MIN_RSA_BITS = 2048
_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_EC_ALGORITHM_BY_CURVE: dict[str, SigningAlgorithm] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", KIND_CLAIM})


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key, the algorithm it signs with and the kid it is published under."""

    kid: str
    algorithm: SigningAlgorithm
    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kid:
            raise ValueError("a signing key needs a kid")
        if self.algorithm.startswith("RS"):
            if not isinstance(self.private_key, rsa.RSAPrivateKey):
                raise ValueError(f"{self.algorithm} needs an RSA key")
            if self.private_key.key_size < MIN_RSA_BITS:
                raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        elif not (
            isinstance(self.private_key, ec.EllipticCurvePrivateKey)
            and _EC_ALGORITHM_BY_CURVE.get(self.private_key.curve.name) == self.algorithm
        ):
            raise ValueError(f"{self.algorithm} needs an EC key on its own curve")

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK with kid, alg and ``use: sig``; no private member."""
        jwk = _public_members(self.private_key)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk

    def to_private_pem(self, *, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted when `password` is given (store it as a secret)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def from_private_pem(
        cls,
        pem: bytes | str,
        kid: str | None = None,
        *,
        algorithm: SigningAlgorithm | None = None,
        password: bytes | None = None,
    ) -> SigningKey:
        """Load a PEM private key; the algorithm defaults to RS256 or the EC key's curve."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("only RSA and EC private keys can sign tokens")
        if algorithm is None:
            algorithm = (
                "RS256" if isinstance(key, rsa.RSAPrivateKey) else _ec_algorithm(key.curve.name)
            )
        return cls(kid or jwk_thumbprint(_public_members(key)), algorithm, key)


def _ec_algorithm(curve_name: str) -> SigningAlgorithm:
    algorithm = _EC_ALGORITHM_BY_CURVE.get(curve_name)
    if algorithm is None:
        raise ValueError(f"unsupported curve {curve_name}")
    return algorithm


def _public_members(key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    # "use: sig" says the same; RFC 7517 advises against sending both.
    jwk.pop("key_ops", None)
    return dict(jwk)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public RSA or EC JWK (a stable kid)."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def generate_rsa_key(
    kid: str | None = None, bits: int = MIN_RSA_BITS, *, algorithm: SigningAlgorithm = "RS256"
) -> SigningKey:
    """A new RSA signing key; the kid defaults to its thumbprint."""
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return SigningKey(kid or jwk_thumbprint(_public_members(key)), algorithm, key)


def generate_ec_key(kid: str | None = None, *, algorithm: SigningAlgorithm = "ES256") -> SigningKey:
    """A new EC signing key on the curve `algorithm` needs; the kid defaults to its thumbprint."""
    curve = _EC_CURVES.get(algorithm)
    if curve is None:
        raise ValueError(f"{algorithm} is not an EC algorithm")
    key = ec.generate_private_key(curve())
    return SigningKey(kid or jwk_thumbprint(_public_members(key)), algorithm, key)


def render_jwks(keys: Iterable[SigningKey | Mapping[str, Any]]) -> dict[str, Any]:
    """The ``/.well-known/jwks.json`` document: public members only, symmetric keys left out.

    Mappings are JWKs kept for keys no longer used to sign (so tokens they signed
    verify until they expire); any private member they carry is dropped.
    """
    published: list[dict[str, Any]] = []
    for key in keys:
        if isinstance(key, SigningKey):
            published.append(key.public_jwk())
            continue
        if key.get("kty") not in ("RSA", "EC") or not key.get("kid"):
            continue
        jwk = {
            name: value
            for name, value in key.items()
            if name not in PRIVATE_MEMBERS and name != "key_ops"
        }
        jwk.setdefault("use", "sig")
        published.append(jwk)
    return {"keys": published}


def sign_token(
    key: SigningKey,
    *,
    subject: str,
    issuer: str,
    audience: str | Sequence[str],
    scopes: Iterable[str] = (),
    kind: PrincipalKind = "user",
    ttl_seconds: float = 300,
    extra_claims: Mapping[str, Any] | None = None,
    now: float | datetime | None = None,
    token_id: str | None = None,
) -> str:
    """A signed access token for `subject`, valid from `now` for `ttl_seconds`."""
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    reserved = RESERVED_CLAIMS.intersection(extra_claims or {})
    if reserved:
        raise ValueError(f"extra_claims may not set {sorted(reserved)}; use the arguments")
    issued_at = _epoch(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience if isinstance(audience, str) else list(audience),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(ttl_seconds),
        "jti": token_id or uuid.uuid4().hex,
        KIND_CLAIM: kind,
        **(extra_claims or {}),
    }
    scope = _scope_string(scopes)
    if scope:
        claims["scope"] = scope
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )


def _epoch(now: float | datetime | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        return int(now.timestamp())
    return int(now)


def _scope_string(scopes: Iterable[str]) -> str:
    unique: dict[str, None] = {}
    for scope in scopes:
        if not scope or any(char.isspace() for char in scope):
            raise ValueError(f"invalid scope {scope!r}: scopes are non-empty and without spaces")
        unique[scope] = None
    return " ".join(unique)
