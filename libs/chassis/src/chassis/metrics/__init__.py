"""Prometheus metrics: definitions and the /metrics endpoint."""

from chassis.metrics import registry
from chassis.metrics.exposition import (
    metrics_router,
    multiprocess_mode,
    render_metrics,
    setup_metrics,
)
from chassis.routing import UNMATCHED_ROUTE

__all__ = [
    "UNMATCHED_ROUTE",
    "metrics_router",
    "multiprocess_mode",
    "registry",
    "render_metrics",
    "setup_metrics",
]
