"""Maintenance: the crons that have orders expire stale pending orders and purge old rows."""
