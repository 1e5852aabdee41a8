"""Endpoints for other services (the worker): status moves and maintenance."""
