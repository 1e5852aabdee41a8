"""How the chassis configures FastAPI's own OpenTelemetry layer."""

from __future__ import annotations

from typing import Any

#: Passed to FastAPI(telemetry=...): FastAPI's own OpenTelemetry layer turns itself on
#: whenever a global SDK provider exists. The chassis supplies the server span
#: (chassis.middleware.telemetry), Prometheus RED metrics and redacted structlog logs,
#: so the native layer would duplicate spans, add one per dependency, endpoint and
#: serialization, and ship exception messages and raw validation input to OTel logs unredacted.
FASTAPI_TELEMETRY_OFF: dict[str, Any] = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
