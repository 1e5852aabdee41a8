"""Keys, a controllable clock, a fake JWKS endpoint and a real one in uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chassis.auth import (
    JWKSCache,
    SigningKey,
    TokenVerifier,
    generate_ec_key,
    generate_rsa_key,
    render_jwks,
    sign_token,
)
from chassis.testing.clock import ManualClock
from chassis.testing.servers import serve_in_thread

ISSUER = "https://issuer.test"
AUDIENCE = "chassis-tests"


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey
    ec: SigningKey
    #: Not published at first: the key an issuer rotates to.
    rotated: SigningKey


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa=generate_rsa_key("rsa-1"), ec=generate_ec_key("ec-1"), rotated=generate_rsa_key("rsa-2")
    )


class FakeIssuer:
    """A JWKS endpoint over httpx.MockTransport that counts fetches and can fail."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys: list[Any] = list(keys)
        self.fetches = 0
        self.failure: Callable[[httpx.Request], httpx.Response] | None = None
        #: When set, each fetch waits for it: a slow issuer.
        self.gate: asyncio.Event | None = None
        self.transport = httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        # Yield once so that concurrent callers really overlap with the fetch.
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            return self.failure(request)
        # Raw members pass through as they are: the cache must cope with a sloppy issuer.
        members = [key.public_jwk() if isinstance(key, SigningKey) else key for key in self.keys]
        return httpx.Response(200, json={"keys": members})

    def go_down(self, failure: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.failure = failure or refuse_connection

    def come_back(self) -> None:
        self.failure = None


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def mint() -> Callable[..., str]:
    """``mint(key, **sign_token_options)``: a token for ISSUER/AUDIENCE, subject-1 by default."""

    def mint(key: SigningKey, **options: Any) -> str:
        options = {"subject": "subject-1", "issuer": ISSUER, "audience": AUDIENCE, **options}
        return sign_token(key, **options)

    return mint


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def issuer(keys: Keys) -> FakeIssuer:
    return FakeIssuer([keys.rsa, keys.ec])


@pytest.fixture
async def http_client(issuer: FakeIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=issuer.transport) as client:
        yield client


@pytest.fixture
def make_cache(http_client: httpx.AsyncClient, clock: ManualClock) -> Callable[..., JWKSCache]:
    def make(**options: Any) -> JWKSCache:
        return JWKSCache(
            "https://issuer.test/.well-known/jwks.json",
            http_client=http_client,
            clock=clock,
            **options,
        )

    return make


@pytest.fixture
def jwks(make_cache: Callable[..., JWKSCache]) -> JWKSCache:
    return make_cache()


@pytest.fixture
def verifier(jwks: JWKSCache) -> TokenVerifier:
    return TokenVerifier(jwks, issuer=ISSUER, audience=AUDIENCE)


class RealIssuer:
    """A JWKS endpoint served by uvicorn on a free 127.0.0.1 port, in its own thread."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.keys: list[Any] = list(keys)
        self.fetches = 0
        self.url = ""
        self._app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])
        self._server = ExitStack()

    async def _jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse(render_jwks(self.keys))

    def start(self) -> None:
        base_url = self._server.enter_context(serve_in_thread(self._app, lifespan="off"))
        self.url = f"{base_url}/.well-known/jwks.json"

    def stop(self) -> None:
        """Take the issuer down (tests call it mid-test; calling it again is harmless)."""
        self._server.close()


@pytest.fixture
def real_issuer(keys: Keys) -> Iterator[RealIssuer]:
    server = RealIssuer([keys.rsa, keys.ec])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port_url(closed_port: int) -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{closed_port}/.well-known/jwks.json"
