"""Who is calling: the `Principal` built from a verified token's claims.

Convention for the kind of caller: the private claim ``kind`` (`KIND_CLAIM`)
is ``"service"`` for machine clients (workers, service-to-service calls) and
``"user"`` for people. A token without the claim is a user token, so a route
that requires ``kind="service"`` is never satisfied by a token from an issuer
that does not know the convention. Any other value makes the token invalid.
`chassis.auth.issuing.sign_token` always writes the claim.

Scopes come from the OAuth2 ``scope`` claim (space-separated string) or the
``scp`` claim (a list, or a space-separated string as some issuers send it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

PrincipalKind: TypeAlias = Literal["user", "service"]

#: The claim naming the kind of caller; see the module docstring.
KIND_CLAIM = "kind"

_KINDS: frozenset[str] = frozenset(get_args(PrincipalKind))


class InvalidClaimsError(ValueError):
    """The claims are signed and valid JWT, but not a principal this chassis understands."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller; `claims` holds the raw, verified claims (read-only)."""

    subject: str
    scopes: frozenset[str] = frozenset()
    kind: PrincipalKind = "user"
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    token_id: str | None = None

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def has_scopes(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)

    def missing_scopes(self, scopes: Iterable[str]) -> frozenset[str]:
        return frozenset(scopes) - self.scopes

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """A principal from verified claims; raises `InvalidClaimsError` if they do not fit."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidClaimsError("sub must be a non-empty string")
        kind = claims.get(KIND_CLAIM, "user")
        if kind not in _KINDS:
            raise InvalidClaimsError(f"{KIND_CLAIM} must be one of {sorted(_KINDS)}")
        token_id = claims.get("jti")
        if token_id is not None and not isinstance(token_id, str):
            raise InvalidClaimsError("jti must be a string")
        return cls(
            subject=subject,
            scopes=scopes_from_claims(claims),
            kind=kind,
            claims=MappingProxyType(dict(claims)),
            token_id=token_id,
        )


def scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """The union of the ``scope`` and ``scp`` claims."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes.update(item for item in value if item)
        else:
            raise InvalidClaimsError(f"{name} must be a string or a list of strings")
    return frozenset(scopes)
