"""The web console's files at /console: its own CSP, hashed assets cached, nothing if unbuilt."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_testing import GatewayFactory

from gateway.console import CONSOLE_CSP


@pytest.fixture
def built_console(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(
        '<!doctype html><script type="module" src="/console/assets/main-1a2b.js"></script>'
    )
    (tmp_path / "assets" / "main-1a2b.js").write_text("console.log('console')")
    return tmp_path


async def test_the_console_page_is_served_with_its_own_strict_csp(
    start_gateway: GatewayFactory, built_console: Path
) -> None:
    with start_gateway(console={"directory": str(built_console)}) as gateway:
        async with gateway.client(follow_redirects=True) as client:
            page = await client.get("/console")
            script = await client.get("/console/assets/main-1a2b.js")
            missing = await client.get("/console/assets/nope.js")
            api = await client.get("/api/v1/platform/status")

    assert page.status_code == 200
    assert "main-1a2b.js" in page.text
    assert page.headers["content-security-policy"] == CONSOLE_CSP
    assert "'unsafe-inline'" not in CONSOLE_CSP
    assert "http" not in CONSOLE_CSP
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-frame-options"] == "DENY"
    assert script.status_code == 200
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # Outside /console the API keeps its default-src 'none'.
    assert api.headers["content-security-policy"].startswith("default-src 'none'")


async def test_an_unbuilt_console_serves_nothing(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    with start_gateway(console={"directory": str(tmp_path)}) as gateway:
        async with gateway.client() as client:
            response = await client.get("/console/")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
