"""50 MB up and down through every middleware of the chain, over a real socket, in flat memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from chassis.middleware import (
    BodyLimitMiddleware,
    CORSMiddleware,
    ProxyHeadersMiddleware,
    SecurityHeadersMiddleware,
    TelemetryMiddleware,
    TrustedHostMiddleware,
    UnhandledErrorMiddleware,
)
from chassis.settings import SecuritySettings
from chassis.testing.servers import serve_in_thread
from chassis.types import ASGIApp

CHUNK = 64 * 1024
TOTAL = 50 * 1024 * 1024
# Far below the 50 MB moved: anything that buffered a body would blow through it.
MEMORY_CEILING = 8 * 1024 * 1024


async def count_upload(request: Request) -> JSONResponse:
    received = 0
    async for piece in request.stream():
        received += len(piece)
    return JSONResponse({"received": received})


async def stream_download(request: Request) -> StreamingResponse:
    piece = b"\x00" * CHUNK

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(TOTAL // CHUNK):
            yield piece

    return StreamingResponse(pieces(), media_type="application/octet-stream")


def full_chain(app: ASGIApp) -> ASGIApp:
    """Every middleware of this package, in the documented order (outer first)."""
    inner: ASGIApp = UnhandledErrorMiddleware(app)
    inner = BodyLimitMiddleware(inner, max_body_bytes=TOTAL * 2)
    inner = TrustedHostMiddleware(inner, allowed_hosts=["127.0.0.1", "localhost"])
    inner = CORSMiddleware(
        inner, security=SecuritySettings(cors_origins=["https://app.example.com"])
    )
    inner = TelemetryMiddleware(inner, service="streaming", timeout_seconds=60, metrics=True)
    inner = SecurityHeadersMiddleware(
        inner, hsts_max_age_seconds=600, content_security_policy="default-src 'none'"
    )
    return ProxyHeadersMiddleware(inner, trusted_proxies=["127.0.0.1/32"])


@pytest.fixture
def base_url() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/upload", count_upload, methods=["POST"]),
            Route("/download", stream_download),
        ]
    )
    with serve_in_thread(full_chain(app), lifespan="off") as url:
        yield url


def peak_bytes() -> int:
    return tracemalloc.get_traced_memory()[1]


async def test_upload_of_50_mb_streams_through_the_chain(base_url: str) -> None:
    async def upload() -> AsyncIterator[bytes]:
        piece = b"\x01" * CHUNK
        for _ in range(TOTAL // CHUNK):
            yield piece

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        tracemalloc.start()
        try:
            response = await client.post("/upload", content=upload())
            peak = peak_bytes()
        finally:
            tracemalloc.stop()

    assert response.status_code == 200
    assert response.json() == {"received": TOTAL}
    assert "x-request-id" in response.headers
    assert peak < MEMORY_CEILING, f"peak traced memory {peak / 2**20:.1f} MiB"


async def test_download_of_50_mb_streams_through_the_chain(base_url: str) -> None:
    received = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        tracemalloc.start()
        try:
            async with client.stream("GET", "/download") as response:
                async for piece in response.aiter_raw():
                    received += len(piece)
            peak = peak_bytes()
        finally:
            tracemalloc.stop()

    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert received == TOTAL
    assert peak < MEMORY_CEILING, f"peak traced memory {peak / 2**20:.1f} MiB"
