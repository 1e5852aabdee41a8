"""`GET /api/v1/platform/status`: readiness, breakers and outbox lag of every service."""
