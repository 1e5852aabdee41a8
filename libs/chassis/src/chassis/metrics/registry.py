"""Every Prometheus metric the chassis exports, defined once.

Metrics live at module level because prometheus_client's default registry is
process-global; in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before
the first import) each gauge says how values from several workers combine.
Label values are bounded: route templates, upstream names, job names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets tuned for API latencies: 5 ms .. 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

# --- inbound HTTP (RED) -----------------------------------------------------
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request, by route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being served now.",
    ["service"],
    multiprocess_mode="livesum",
)

# --- rate limiting -----------------------------------------------------------
RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections_total",
    "Requests refused with 429, by rule.",
    ["service", "rule"],
)
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "rate_limit_backend_errors_total",
    "Rate-limit checks that could not reach the backend, by policy applied.",
    ["service", "policy"],
)

# --- load shedding ------------------------------------------------------------
HTTP_REQUESTS_SHED = Counter(
    "http_requests_shed_total",
    "Requests the process did not work on, by reason: concurrency (503 at the limit), "
    "deadline (504, the caller's deadline had passed), client_gone (cancelled on disconnect).",
    ["service", "reason"],
)

# --- outbound HTTP -----------------------------------------------------------
UPSTREAM_REQUESTS = Counter(
    "http_client_requests_total",
    "Calls to upstream services, by outcome (status code or error kind).",
    ["upstream", "method", "outcome"],
)
UPSTREAM_REQUEST_DURATION = Histogram(
    "http_client_request_duration_seconds",
    "Time of one attempt to an upstream service.",
    ["upstream", "method"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_RETRIES = Counter(
    "http_client_retries_total",
    "Retried attempts to upstream services, by reason.",
    ["upstream", "reason"],
)
BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open (worst worker).",
    ["upstream"],
    multiprocess_mode="max",
)
BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["upstream", "state"],
)
BREAKER_REJECTIONS = Counter(
    "circuit_breaker_rejections_total",
    "Calls refused without trying because the breaker was open.",
    ["upstream"],
)

# --- database pool -----------------------------------------------------------
DB_POOL_SIZE = Gauge(
    "db_pool_size",
    "Configured connection pool size (summed over workers).",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out",
    "Connections currently checked out of the pool (summed over workers).",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_TIMEOUTS = Counter(
    "db_pool_timeouts_total",
    "Checkouts that gave up waiting for a free connection.",
    ["service"],
)

# --- events and outbox -------------------------------------------------------
EVENTS_PUBLISHED = Counter(
    "events_published_total",
    "Events accepted by the broker, by type.",
    ["producer", "type"],
)
EVENTS_RECEIVED = Counter(
    "events_received_total",
    "Events received by a subscriber, by type.",
    ["consumer", "type"],
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog",
    "Outbox rows not yet published.",
    ["producer"],
    multiprocess_mode="max",
)
OUTBOX_LAG = Gauge(
    "outbox_lag_seconds",
    "Age of the oldest unpublished outbox row.",
    ["producer"],
    multiprocess_mode="max",
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total",
    "Outbox publish attempts that failed and will be retried.",
    ["producer"],
)
EVENT_LAG = Histogram(
    "event_delivery_lag_seconds",
    "Time from an event's occurrence to its receipt by a consumer.",
    ["consumer", "type"],
    buckets=LATENCY_BUCKETS,
)

# --- jobs ----------------------------------------------------------------------
JOB_OUTCOMES = Counter(
    "job_outcomes_total",
    "Finished job attempts, by job name and outcome (success, retry, failed).",
    # Not "job": Prometheus reserves that label for the scrape job and would rename ours.
    ["task", "outcome"],
)
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time one job attempt took.",
    ["task"],
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0),
)
QUEUE_DEPTH = Gauge(
    "queue_depth",
    "Jobs waiting in the queue.",
    ["queue"],
    multiprocess_mode="max",
)

# --- cache -----------------------------------------------------------------------
CACHE_LOOKUPS = Counter(
    "cache_lookups_total",
    "Cache lookups by get_or_set, by result (hit, miss).",
    ["store", "result"],
)

# --- auth ------------------------------------------------------------------------
JWKS_REFRESHES = Counter(
    "jwks_refreshes_total",
    "JWKS fetches, by reason (expired, unknown_kid) and outcome (ok, error).",
    ["reason", "outcome"],
)
AUTH_REJECTIONS = Counter(
    "auth_token_rejections_total",
    "Bearer tokens refused, by reason (malformed, algorithm, unknown_key, expired, "
    "invalid, unavailable).",
    ["reason"],
)

# --- live event connections (SSE, WebSocket) ------------------------------------
LIVE_EVENT_CONNECTIONS = Gauge(
    "live_event_connections",
    "Live event connections open now, by transport (sse, websocket).",
    ["transport"],
    multiprocess_mode="livesum",
)
LIVE_EVENT_CONNECTIONS_DROPPED = Counter(
    "live_event_connections_dropped_total",
    "Live event connections closed by the server, by transport and reason "
    "(slow_consumer, shutdown).",
    ["transport", "reason"],
)
LIVE_EVENTS_DELIVERED = Counter(
    "live_events_delivered_total",
    "Events handed to live connections' queues, by transport.",
    ["transport"],
)
