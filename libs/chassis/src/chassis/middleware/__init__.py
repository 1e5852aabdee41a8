"""Pure ASGI middleware for chassis services: plain ASGI classes, never base-class middleware.

The order they are assembled in, and why, is in docs/adr/0002-middleware-order.md.
"""

from chassis.middleware.body_limit import BodyLimitMiddleware, RequestBodyTooLarge
from chassis.middleware.cors import CORSMiddleware, cors_middleware_kwargs
from chassis.middleware.errors import UnhandledErrorMiddleware
from chassis.middleware.proxy_headers import ProxyHeadersMiddleware
from chassis.middleware.security_headers import SecurityHeadersMiddleware
from chassis.middleware.telemetry import TelemetryMiddleware, new_request_id
from chassis.middleware.trusted_host import TrustedHostMiddleware

__all__ = [
    "BodyLimitMiddleware",
    "CORSMiddleware",
    "ProxyHeadersMiddleware",
    "RequestBodyTooLarge",
    "SecurityHeadersMiddleware",
    "TelemetryMiddleware",
    "TrustedHostMiddleware",
    "UnhandledErrorMiddleware",
    "cors_middleware_kwargs",
    "new_request_id",
]
