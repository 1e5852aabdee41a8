"""``GET /.well-known/jwks.json``: the public keys every service verifies tokens with."""

from __future__ import annotations

from fastapi import APIRouter, Response

from contracts.keys import JsonWebKeySet
from users.deps import KeyStoreDep

router = APIRouter(tags=["keys"])

#: Verifiers may cache the set this long; a token with an unknown kid makes them refetch.
JWKS_MAX_AGE_SECONDS = 300


@router.get("/.well-known/jwks.json", summary="Public signing keys (JWKS)")
async def get_jwks(key_store: KeyStoreDep, response: Response) -> JsonWebKeySet:
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    return JsonWebKeySet.model_validate(await key_store.jwks())
