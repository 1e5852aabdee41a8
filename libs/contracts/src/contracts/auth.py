"""Wire shapes of the auth API: login, refresh, logout, the client-credentials grant, tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.users import EMAIL_FIELD_MAX_LENGTH

SECRET_MAX_LENGTH = 512


class LoginRequest(BaseModel):
    """Login as JSON; the email is matched after trimming and lower-casing."""

    email: str = Field(min_length=1, max_length=EMAIL_FIELD_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=SECRET_MAX_LENGTH)


class LoginForm(BaseModel):
    """Login as an OAuth2 password-grant form (``application/x-www-form-urlencoded``)."""

    username: str = Field(min_length=1, max_length=EMAIL_FIELD_MAX_LENGTH)
    password: str = Field(min_length=1, max_length=SECRET_MAX_LENGTH)
    grant_type: Literal["password"] | None = None
    scope: str | None = Field(default=None, max_length=SECRET_MAX_LENGTH)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, no secret
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=SECRET_MAX_LENGTH)


class LogoutRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=SECRET_MAX_LENGTH)


class ClientCredentialsRequest(BaseModel):
    """The OAuth2 client-credentials grant, as a form."""

    grant_type: str = Field(max_length=64, description="Must be `client_credentials`.")
    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str = Field(min_length=1, max_length=SECRET_MAX_LENGTH)
    scope: str | None = Field(
        default=None,
        max_length=SECRET_MAX_LENGTH,
        description="Space-separated subset of the client's scopes; all of them when omitted.",
    )


class ServiceToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, no secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    scope: str
