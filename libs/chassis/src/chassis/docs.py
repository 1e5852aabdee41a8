"""The interactive API docs, served with no network beyond the service itself.

FastAPI's own /docs and /redoc pages load Swagger UI and ReDoc from a CDN, so
they are blank on a machine or cluster without general internet access. These
pages load the same bundles from ``/docs/assets/``, which serves the files the
``fastapi-offline`` package ships (Swagger UI and ReDoc, MIT), and turn off
what would still reach out: Google Fonts in ReDoc and Swagger UI's online
validator badge. The CSP of these pages (`chassis.middleware.security_headers`)
therefore allows ``'self'`` only.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from chassis.docs_paths import (
    DOCS_ASSETS_URL,
    DOCS_URL,
    OAUTH2_REDIRECT_URL,
    OPENAPI_URL,
    REDOC_URL,
)

#: Swagger UI's parameters: FastAPI's defaults (via `get_swagger_ui_html`) plus no
#: validator, whose badge is an image from validator.swagger.io.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def docs_assets_directory() -> Path:
    """Where the installed ``fastapi_offline`` package keeps its static files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets on `app`.

    Build `app` with ``docs_url=None, redoc_url=None``; the schema stays at
    ``openapi_url``. Each page honours ``root_path`` (a service mounted under a
    prefix) the way FastAPI's own pages do.
    """

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=docs_assets_directory()), name="docs-assets")
