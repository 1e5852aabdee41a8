"""Where the interactive API docs live, for the builder that mounts them and the middleware.

A leaf module: the builder (which serves the docs) and the security-headers layer
(which relaxes its CSP for these paths only) both import it, so neither imports
the other.
"""

from __future__ import annotations

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
#: Swagger UI's and ReDoc's bundles, served by the service itself (`chassis.docs`).
DOCS_ASSETS_URL = "/docs/assets"

#: Every path the docs need: the pages, the schema they render, Swagger's OAuth2 redirect.
DOCS_PATHS = (DOCS_URL, REDOC_URL, OPENAPI_URL, OAUTH2_REDIRECT_URL)
