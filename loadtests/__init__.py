"""Locust suites, load shapes, SLO gates and the capacity report for the platform.

Modules that import Locust (``locustfile``, ``direct``, ``hooks``, ``users``) run inside
Locust's gevent-patched process only; the others are plain Python, shared with the
command-line tools and unit-tested in pytest.
"""
