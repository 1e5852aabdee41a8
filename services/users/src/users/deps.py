"""Dependency aliases for the handlers (``Annotated`` only, never ``= Depends()``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from chassis.auth import Principal, scopes_guard
from chassis.database import SessionDep
from contracts.auth import LoginRequest
from users.auth.credentials import read_login_credentials
from users.auth.passwords import Passwords
from users.auth.throttle import LoginThrottle
from users.keys.store import KeyStore
from users.settings import UsersSettings, app_settings


async def get_passwords(connection: HTTPConnection) -> Passwords:
    passwords: Passwords = connection.app.state.passwords
    return passwords


async def get_key_store(connection: HTTPConnection) -> KeyStore:
    store: KeyStore = connection.app.state.key_store
    return store


async def get_login_throttle(connection: HTTPConnection) -> LoginThrottle:
    throttle: LoginThrottle = connection.app.state.login_throttle
    return throttle


SettingsDep = Annotated[UsersSettings, Depends(app_settings)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
LoginCredentials = Annotated[LoginRequest, Depends(read_login_credentials)]
#: A user (or client) allowed to read and change its own profile.
ProfileOwner = Annotated[Principal, scopes_guard("profile")]
#: An administrator of user accounts.
UsersAdmin = Annotated[Principal, scopes_guard("users:admin")]

__all__ = [
    "KeyStoreDep",
    "LoginCredentials",
    "LoginThrottleDep",
    "PasswordsDep",
    "ProfileOwner",
    "SessionDep",
    "SettingsDep",
    "UsersAdmin",
]
