"""Verify a bearer JWT against the issuer's JWKS and turn it into a `Principal`.

Only asymmetric algorithms from an allow-list are accepted, chosen by us and
not by the token: ``none`` and every ``HS*`` are refused before any key is
looked up, which defeats the "HS256 signed with the public key" confusion.
The key comes from the JWKS by ``kid`` (required) and must itself be bound to
the token's algorithm. Errors are short and generic and never echo the token.

A token that passed is remembered (``auth.verified_token_cache_size``): a client
sends the same token with every request until it expires, and checking its
signature again is most of what verification costs. A remembered token is
accepted only while its ``exp`` (plus leeway) has not passed and the very key
object that verified it is still the one the key set holds under its ``kid``: a
refreshed key set (a rotation, a retired key) means verifying it again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import jwt
import structlog

from chassis.auth.jwks import DEFAULT_ALGORITHMS, JWKSCache, KeySetUnavailable, UnknownKeyError
from chassis.auth.principal import InvalidClaimsError, Principal
from chassis.errors import ServiceUnavailable, Unauthorized
from chassis.metrics.registry import AUTH_REJECTIONS

logger = structlog.get_logger("chassis.auth.verify")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")

INVALID_DETAIL = "The access token is invalid."
EXPIRED_DETAIL = "The access token has expired."
UNAVAILABLE_DETAIL = "Access tokens cannot be verified right now; retry later."


class TokenVerifier:
    """Checks signature, alg, kid, exp/nbf/iat (with leeway), iss, aud and sub."""

    def __init__(
        self,
        jwks: JWKSCache,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway_seconds: float = 30.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        refused = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if refused or not algorithms:
            raise ValueError(
                f"only asymmetric algorithms can verify tokens; refused: {sorted(refused)}"
            )
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must be >= 0")
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway_seconds = leeway_seconds
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.cache_size = cache_size
        self._clock = clock
        #: token -> (principal, kid, the key that verified it, accepted until); oldest first.
        self._verified: OrderedDict[str, tuple[Principal, str, jwt.PyJWK, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The principal the token names; raises `Unauthorized` or `ServiceUnavailable`."""
        remembered = self._verified.get(token) if self.cache_size else None
        if remembered is not None:
            principal, kid, key, until = remembered
            # Keeps the key set fresh in the background, as a full verification would.
            await self.jwks.refresh_if_expired(wait=False)
            if self._clock() < until and self.jwks.current_key(kid) is key:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, kid, key, expires_at = await self._verify(token)
        if self.cache_size:
            self._verified[token] = (principal, kid, key, expires_at + self.leeway_seconds)
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, str, jwt.PyJWK, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("malformed") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _refuse("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("malformed")
        try:
            key = await self.jwks.get_key(kid)
        except UnknownKeyError:
            raise _refuse("unknown_key") from None
        except KeySetUnavailable:
            AUTH_REJECTIONS.labels(reason="unavailable").inc()
            raise ServiceUnavailable(UNAVAILABLE_DETAIL) from None
        if key.algorithm_name != alg:
            raise _refuse("algorithm")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _refuse("expired", EXPIRED_DETAIL) from None
        except jwt.PyJWTError as exc:
            raise _refuse("invalid", error=type(exc).__name__) from None
        try:
            principal = Principal.from_claims(claims)
        except InvalidClaimsError as exc:
            raise _refuse("invalid", error=str(exc)) from None
        return principal, kid, key, float(claims["exp"])


def _refuse(reason: str, detail: str = INVALID_DETAIL, *, error: str | None = None) -> Unauthorized:
    AUTH_REJECTIONS.labels(reason=reason).inc()
    logger.info("token_refused", reason=reason, error=error)
    return Unauthorized(detail)
