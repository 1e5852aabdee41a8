"""What every log line goes through: redaction of secrets, the timestamp, the JSON renderer.

Shared by the structlog chain (chassis.logging) and the access line (chassis.access_line).
The JSON renderer (orjson) and the timestamp are written for the per-request line: with
structlog's stock JSONRenderer and TimeStamper the access log alone cost a fifth of the
request path (docs/adr/0010).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

REDACTED = "[REDACTED]"

# Substrings: a key containing any of them is redacted (access_token, x-api-key ...).
SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "credential",
)


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    # Cached: the same few dozen keys recur on every line.
    lowered = key.lower()
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


# Values that can never hide a nested secret: skipped without an ABC isinstance check.
_SCALARS = (str, int, float, bool, type(None))


def _redact_value(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_sensitive_key(key) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item) for item in value)
    return value


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace values under sensitive keys, recursively."""
    for key, value in event_dict.items():
        if key == "event":
            continue
        if is_sensitive_key(key):
            event_dict[key] = REDACTED
        elif not isinstance(value, _SCALARS):
            event_dict[key] = _redact_value(value)
    return event_dict


# (second, "YYYY-MM-DDTHH:MM:SS") of the last line: formatting a date is most of
# what a timestamp costs, and consecutive lines nearly always share the second.
# One slot replaced whole, so that threads logging at once never see a torn pair.
_second_cache: list[tuple[int, str]] = [(-1, "")]


def add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``timestamp`` as ISO 8601 UTC with microseconds and ``Z``.

    The same text as ``TimeStamper(fmt="iso", utc=True)`` at a quarter of its cost.
    """
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_cache[0]
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache[0] = (second, prefix)
    micros = min(int((now - second) * 1_000_000), 999_999)
    event_dict["timestamp"] = "%s.%06dZ" % (prefix, micros)  # noqa: UP031 (faster here)
    return event_dict


def json_fallback(value: Any) -> Any:
    """What neither orjson nor json can encode: its ``__structlog__()`` or its repr."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one compact JSON object; orjson, or json for what orjson refuses.

    orjson is about ten times faster than ``json.dumps`` here; it refuses integers
    beyond 64 bits and a few other values, which the stdlib encoder still writes.
    """
    try:
        return orjson.dumps(
            event_dict, default=json_fallback, option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:
        return json.dumps(event_dict, default=json_fallback, separators=(",", ":"))
