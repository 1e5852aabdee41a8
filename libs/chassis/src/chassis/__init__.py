"""Domain-free production infrastructure for FastAPI services."""
