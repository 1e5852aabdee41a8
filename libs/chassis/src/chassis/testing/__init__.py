"""Test helpers for chassis services; the pytest plugin lives in `chassis.testing.plugin`."""

from chassis.testing.client import app_client

__all__ = ["app_client"]
