"""JWT authentication: JWKS-backed verification, principals, scope guards, token issuing."""

from chassis.auth.deps import (
    OptionalPrincipalDep,
    PrincipalDep,
    get_optional_principal,
    get_principal,
    kind_guard,
    require_kind,
    require_scopes,
    scopes_guard,
)
from chassis.auth.issuing import (
    SigningKey,
    generate_ec_key,
    generate_rsa_key,
    jwk_thumbprint,
    render_jwks,
    sign_token,
)
from chassis.auth.jwks import (
    JWKSCache,
    JWKSLoader,
    KeySetError,
    KeySetStatus,
    KeySetUnavailable,
    UnknownKeyError,
)
from chassis.auth.middleware import PrincipalMiddleware
from chassis.auth.principal import KIND_CLAIM, Principal, PrincipalKind
from chassis.auth.setup import KeyLoaderFactory, open_token_verifier, setup_auth
from chassis.auth.state import PRINCIPAL_STATE_KEY
from chassis.auth.verify import TokenVerifier

__all__ = [
    "KIND_CLAIM",
    "PRINCIPAL_STATE_KEY",
    "JWKSCache",
    "JWKSLoader",
    "KeyLoaderFactory",
    "KeySetError",
    "KeySetStatus",
    "KeySetUnavailable",
    "OptionalPrincipalDep",
    "Principal",
    "PrincipalDep",
    "PrincipalKind",
    "PrincipalMiddleware",
    "SigningKey",
    "TokenVerifier",
    "UnknownKeyError",
    "generate_ec_key",
    "generate_rsa_key",
    "get_optional_principal",
    "get_principal",
    "jwk_thumbprint",
    "kind_guard",
    "open_token_verifier",
    "render_jwks",
    "require_kind",
    "require_scopes",
    "scopes_guard",
    "setup_auth",
    "sign_token",
]
