"""``/api/v1/auth``: sign-up, login, refresh, logout and the client-credentials grant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from chassis.errors import service_error_response
from chassis.openapi import problem_responses
from contracts.auth import (
    ClientCredentialsRequest,
    LogoutRequest,
    RefreshRequest,
    ServiceToken,
    TokenPair,
)
from contracts.users import UserCreate, UserRead
from users.auth import service
from users.auth.credentials import login_request_body
from users.deps import (
    KeyStoreDep,
    LoginCredentials,
    LoginThrottleDep,
    PasswordsDep,
    SessionDep,
    SettingsDep,
)

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/signup",
    status_code=201,
    summary="Create an account",
    responses=problem_responses(
        {409: "The email is taken.", 422: "Invalid email or a password the policy refuses."}
    ),
)
async def signup(
    body: UserCreate, session: SessionDep, passwords: PasswordsDep, settings: SettingsDep
) -> UserRead:
    user = await service.sign_up(
        session, body=body, passwords=passwords, admin_emails=settings.admin_emails
    )
    return UserRead.model_validate(user)


@router.post(
    "/login",
    summary="Log in with email and password (JSON or OAuth2 password form)",
    responses=problem_responses(
        {
            401: "Wrong email or password (one answer for both).",
            422: "Malformed body.",
            429: "Too many login attempts from this address or for this account; see Retry-After.",
        }
    ),
    openapi_extra={"requestBody": login_request_body()},
)
async def login(
    *,
    credentials: LoginCredentials,
    session: SessionDep,
    passwords: PasswordsDep,
    key_store: KeyStoreDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
) -> TokenPair:
    return await service.log_in(
        session,
        email=credentials.email,
        password=credentials.password,
        passwords=passwords,
        throttle=throttle,
        key_store=key_store,
        tokens=settings.token,
    )


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new pair (the old one stops working)",
    response_model=TokenPair,
    responses=problem_responses(
        {401: "Unknown, expired, revoked or reused refresh token.", 422: "Malformed body."}
    ),
)
async def refresh_tokens(
    request: Request,
    body: RefreshRequest,
    session: SessionDep,
    key_store: KeyStoreDep,
    settings: SettingsDep,
) -> TokenPair | Response:
    outcome = await service.refresh(
        session,
        refresh_token=body.refresh_token,
        key_store=key_store,
        tokens=settings.token,
    )
    if isinstance(outcome, service.ReusedRefreshToken):
        # Answered, not raised, so that the session dependency commits the revocation.
        return service_error_response(request, service.refresh_refused())
    return outcome


@router.post(
    "/logout",
    status_code=204,
    summary="Revoke a refresh token and every token rotated from the same login",
    responses=problem_responses({422: "Malformed body."}),
)
async def logout(body: LogoutRequest, session: SessionDep) -> Response:
    await service.log_out(session, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.post(
    "/token",
    summary="Client-credentials grant: a service token for a machine client",
    responses=problem_responses(
        {
            400: "Unsupported grant_type or a scope the client does not have.",
            401: "Unknown client or wrong secret.",
            422: "Malformed form.",
        }
    ),
)
async def issue_service_token(
    form: Annotated[ClientCredentialsRequest, Form()],
    key_store: KeyStoreDep,
    settings: SettingsDep,
) -> ServiceToken:
    return await service.grant_client_credentials(
        grant_type=form.grant_type,
        client_id=form.client_id,
        client_secret=form.client_secret,
        scope=form.scope,
        clients=settings.service_clients,
        key_store=key_store,
        tokens=settings.token,
    )
