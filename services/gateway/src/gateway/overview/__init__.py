"""`GET /api/v1/me/overview`: the caller's profile and recent orders, fetched concurrently."""
