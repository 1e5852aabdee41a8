"""Test helpers for chassis services; the pytest plugin lives in `chassis.testing.plugin`."""

from chassis.testing.client import app_client
from chassis.testing.openapi import assert_valid_openapi, openapi_problems, openapi_refs
from chassis.testing.polling import eventually

__all__ = [
    "app_client",
    "assert_valid_openapi",
    "eventually",
    "openapi_problems",
    "openapi_refs",
]
