"""FastAPI dependencies: the caller's `Principal`, scope and kind requirements.

    ThingWriter = require_scopes("things:write")
    ServiceCaller = require_kind("service")

    @router.post("/things")
    async def create_thing(principal: ThingWriter) -> ThingRead: ...

A missing or invalid token is a 401 problem with ``WWW-Authenticate: Bearer``;
a valid token without the needed scopes (or of the wrong kind) is a 403. A
token is verified once per request: `PrincipalMiddleware` may already have
recorded the principal (or the refusal), see `chassis.auth.state`; the
principal is also on ``request.state.principal``.

`require_scopes` returns an ``Annotated`` alias; under mypy, which does not
accept a call as a type, write ``Annotated[Principal, scopes_guard("x")]``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from chassis.auth.principal import Principal, PrincipalKind
from chassis.auth.state import record_outcome, recorded_outcome
from chassis.auth.verify import TokenVerifier
from chassis.errors import Forbidden, ServiceError, Unauthorized

# Reads the header for us and documents the scheme in OpenAPI; we do our own errors.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    bearerFormat="JWT",
    description="An access token from the identity service.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def token_verifier(connection: HTTPConnection) -> TokenVerifier:
    """The app's verifier (the ``token_verifier`` resource of `setup_auth`)."""
    verifier: TokenVerifier | None = getattr(connection.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError(
            "no token verifier on app.state: enable settings.auth and add the auth step"
        )
    return verifier


async def get_optional_principal(
    connection: HTTPConnection, credentials: BearerCredentials
) -> Principal | None:
    """The caller, or None without a token; a token that is present must be valid."""
    if credentials is None:
        return None
    outcome = recorded_outcome(connection.scope)
    if outcome is None:
        try:
            outcome = await token_verifier(connection).verify(credentials.credentials)
        except ServiceError as exc:
            outcome = exc
        record_outcome(connection.scope, outcome)
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_principal(principal: OptionalPrincipalDep) -> Principal:
    """The caller; 401 without a valid bearer token."""
    if principal is None:
        raise Unauthorized("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def scopes_guard(*scopes: str) -> Any:
    """A ``Depends`` that yields the principal if it holds every scope in `scopes`, else 403."""
    required = frozenset(scopes)
    challenge = f'Bearer error="insufficient_scope", scope="{" ".join(sorted(required))}"'

    async def require_scopes_dependency(principal: PrincipalDep) -> Principal:
        missing = sorted(principal.missing_scopes(required))
        if missing:
            raise Forbidden(
                f"Missing scope: {' '.join(missing)}.",
                headers={"WWW-Authenticate": challenge},
                extra={"missing_scopes": missing},
            )
        return principal

    return Depends(require_scopes_dependency)


def kind_guard(kind: PrincipalKind) -> Any:
    """A ``Depends`` that yields the principal if it is of `kind`, else 403."""

    async def require_kind_dependency(principal: PrincipalDep) -> Principal:
        if principal.kind != kind:
            raise Forbidden(f"Only {kind} clients may do this.")
        return principal

    return Depends(require_kind_dependency)


def require_scopes(*scopes: str) -> Any:
    """``Annotated[Principal, ...]`` that 403s unless the caller holds every scope."""
    return Annotated[Principal, scopes_guard(*scopes)]


def require_kind(kind: PrincipalKind) -> Any:
    """``Annotated[Principal, ...]`` that 403s unless the caller is of `kind`."""
    return Annotated[Principal, kind_guard(kind)]
