"""The users service app: ``uvicorn --factory users.main:create_app --port 8001``.

The identity provider of the platform: accounts, login with rotating refresh
tokens, the client-credentials grant for services, and the RS256 keys (JWKS)
every service verifies access tokens with. Migrate first:
``alembic -c services/users/alembic.ini upgrade head``.
"""

from __future__ import annotations

from fastapi import FastAPI

from chassis.builder import AppBuilder
from contracts.examples import REQUEST_EXAMPLES
from users.auth.passwords import setup_passwords
from users.auth.router import router as auth_router
from users.auth.throttle import setup_login_throttle
from users.keys.router import router as keys_router
from users.keys.store import key_loader, setup_key_store
from users.settings import UsersSettings, get_settings
from users.user.router import router as user_router

API_PREFIX = "/api/v1"

OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign-up, login, token refresh and service tokens."},
    {"name": "users", "description": "Profiles and the admin listing."},
    {"name": "keys", "description": "Public keys that verify access tokens."},
]


def create_app(settings: UsersSettings | None = None) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""
    settings = (settings or get_settings()).for_builder()
    builder = (
        AppBuilder(
            settings,
            title="users",
            description="Identity provider: accounts, tokens and signing keys.",
            openapi_tags=OPENAPI_TAGS,
            request_examples=REQUEST_EXAMPLES,
        )
        .with_tracing()
        .with_database()
        .with_redis()
    )
    setup_passwords(builder, settings.passwords)
    setup_login_throttle(builder, settings)
    setup_key_store(builder, settings)
    return (
        builder.with_auth(key_loader=key_loader)
        .with_metrics()
        .with_routes(auth_router, user_router, prefix=API_PREFIX)
        .with_routes(keys_router)
        .build()
    )
