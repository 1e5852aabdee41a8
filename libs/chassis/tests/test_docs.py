"""/docs and /redoc load everything from the service itself: nothing from a CDN."""

from __future__ import annotations

import re
from typing import Any

from chassis.builder import AppBuilder
from chassis.docs import docs_assets_directory
from chassis.settings import BaseServiceSettings

ASSETS = {
    "/docs/assets/swagger-ui-bundle.js": "javascript",
    "/docs/assets/swagger-ui.css": "text/css",
    "/docs/assets/redoc.standalone.js": "javascript",
    "/docs/assets/favicon.png": "image/png",
}


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


async def test_each_docs_page_loads_only_the_services_own_assets(make_client: Any) -> None:
    async with make_client(AppBuilder(BaseServiceSettings(), title="shop").build()) as client:
        swagger = await client.get("/docs")
        redoc = await client.get("/redoc")
        redirect = await client.get("/docs/oauth2-redirect")

    assert swagger.status_code == redoc.status_code == redirect.status_code == 200
    assert "<title>shop - Swagger UI</title>" in swagger.text
    assert "<title>shop - ReDoc</title>" in redoc.text
    for page in (swagger.text, redoc.text):
        assert "http://" not in page
        assert "https://" not in page
        assert "fonts.googleapis" not in page
    assert set(_urls(swagger.text)) >= {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/favicon.png",
        "/openapi.json",
    }
    assert "/docs/assets/redoc.standalone.js" in redoc.text
    assert '"validatorUrl": null' in swagger.text  # no badge image from validator.swagger.io


async def test_the_assets_are_served_with_their_types(make_client: Any) -> None:
    async with make_client(AppBuilder(BaseServiceSettings()).build()) as client:
        for path, content_type in ASSETS.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert content_type in response.headers["content-type"], path
            name = path.rsplit("/", 1)[-1]
            assert response.content == (docs_assets_directory() / name).read_bytes()
        schema = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/docs") for path in schema["paths"])


async def test_pages_and_assets_follow_the_root_path(make_client: Any) -> None:
    app = AppBuilder(BaseServiceSettings()).build()
    app.root_path = "/api/shop"
    async with make_client(app) as client:
        swagger = await client.get("/docs")
        redoc = await client.get("/redoc")
    assert "/api/shop/docs/assets/swagger-ui-bundle.js" in swagger.text
    assert "/api/shop/openapi.json" in swagger.text
    assert "/api/shop/docs/assets/redoc.standalone.js" in redoc.text


async def test_no_docs_and_no_assets_in_production(make_client: Any) -> None:
    production = BaseServiceSettings(environment="production")
    async with make_client(AppBuilder(production).build()) as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect", *ASSETS):
            assert (await client.get(path)).status_code == 404, path
