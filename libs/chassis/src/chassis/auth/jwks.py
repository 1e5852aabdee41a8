"""A cache of the issuer's public signing keys (JWKS), built to survive issuer outages.

* Fresh for ``ttl_seconds`` after a successful fetch; then the next lookup
  starts a refresh and, while it runs, is answered from the old set (a
  lookup never waits on the issuer while a usable set exists, except for an
  unknown kid).
* If a refresh fails (connect error, timeout, non-200, bad JSON, no usable
  key) the old set keeps being served until it is ``stale_seconds`` old
  (counted from its fetch; never less than the TTL); after that lookups raise
  `KeySetUnavailable` (a 503 at the API: the caller's token may be fine).
* A kid that is not in the set forces one refresh, so a rotated key works
  without a restart. Attempts to fetch are spaced at least
  ``min_refresh_interval_seconds`` apart, so tokens with made-up kids (and a
  down issuer) cannot make us hammer the issuer.
* Without a usable set (none fetched yet, or too old) every request is refused
  anyway, so a failed attempt is retried after ``unusable_retry_seconds`` (1 s,
  never more than the interval above) instead: one fetch that failed at a
  process's first request (seen in make compose-smoke: a name lookup that timed
  out in the container) must not refuse every token for ten seconds more.
* Concurrent callers share a single in-flight fetch.
* Only asymmetric keys meant for signatures with an allowed algorithm are kept.

The set normally comes over HTTP from ``url``; an issuer that verifies its own
tokens passes a `JWKSLoader` instead and gets the same caching and refresh rules
without calling itself over the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import httpx
import jwt
import structlog

from chassis.metrics.registry import JWKS_REFRESHES

logger = structlog.get_logger("chassis.auth.jwks")

DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")

# Members that only a private (or symmetric) key has; a public key set never carries them.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

KeySetState = Literal["empty", "fresh", "stale", "expired"]

#: Returns a JWKS document (``{"keys": [...]}``) from somewhere other than HTTP, such as
#: the issuer's own key store.
JWKSLoader = Callable[[], Awaitable[Any]]
RefreshReason = Literal["startup", "expired", "unknown_kid"]


class KeySetError(Exception):
    """Base of the errors a key lookup raises."""


class KeySetUnavailable(KeySetError):
    """No usable key set: never fetched, or too old while the issuer cannot be reached."""


class UnknownKeyError(KeySetError, LookupError):
    """The key set (even just refreshed) has no key with this kid."""


class _FetchError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class KeySetStatus:
    """A snapshot of the cache for readiness reports."""

    state: KeySetState
    age_seconds: float | None
    key_count: int
    last_error: str | None

    @property
    def usable(self) -> bool:
        return self.state in ("fresh", "stale")

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "keys": self.key_count,
            "last_error": self.last_error,
        }


class JWKSCache:
    """Verification keys from a JWKS URL, cached with TTL, stale fallback and refresh on miss.

    Give exactly one of `http_client` (fetch `url`) and `loader` (call it; `url`
    then only names the set in logs).
    """

    def __init__(
        self,
        url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        loader: JWKSLoader | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        ttl_seconds: float = 300.0,
        stale_seconds: float = 3600.0,
        min_refresh_interval_seconds: float = 10.0,
        unusable_retry_seconds: float = 1.0,
        timeout_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("ttl_seconds and timeout_seconds must be positive")
        if stale_seconds < 0 or min_refresh_interval_seconds < 0 or unusable_retry_seconds < 0:
            raise ValueError(
                "stale_seconds, min_refresh_interval_seconds and unusable_retry_seconds "
                "must be >= 0"
            )
        self.url = url
        self.algorithms = frozenset(algorithms)
        self.ttl_seconds = ttl_seconds
        self.stale_seconds = stale_seconds
        self.min_refresh_interval_seconds = min_refresh_interval_seconds
        self.unusable_retry_seconds = min(unusable_retry_seconds, min_refresh_interval_seconds)
        self.timeout_seconds = timeout_seconds
        self._source: JWKSLoader
        if http_client is not None and loader is None:
            self._source = partial(self._download, http_client)
        elif loader is not None and http_client is None:
            self._source = partial(self._load, loader)
        else:
            raise ValueError("give exactly one of http_client and loader")
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_error: str | None = None
        self._inflight: asyncio.Task[None] | None = None

    @property
    def max_age_seconds(self) -> float:
        """Age after which the set is no longer trusted, whatever the issuer's state."""
        return max(self.ttl_seconds, self.stale_seconds)

    async def get_key(self, kid: str) -> jwt.PyJWK:
        """The verification key named `kid`.

        Raises `UnknownKeyError` when no such key exists after a refresh (or the
        refresh is rate limited), `KeySetUnavailable` when no usable set exists.
        """
        await self.refresh_if_expired(wait=False)
        key = self._lookup(kid)
        if key is None:
            task = self._start_refresh("unknown_kid")
            if task is not None:
                await asyncio.shield(task)
            key = self._lookup(kid)
            if key is None:
                raise UnknownKeyError(kid)
        return key

    def current_key(self, kid: str) -> jwt.PyJWK | None:
        """The key held under `kid` now, without fetching; None if none or no usable set."""
        if not self.status().usable:
            return None
        return self._keys.get(kid)

    async def refresh_if_expired(self, *, wait: bool = True) -> None:
        """Refresh the set if it was never fetched or its TTL has passed (failures tolerated).

        With ``wait=False`` a stale but usable set is not held up: the fetch
        runs in the background. Without a usable set the caller always waits.
        """
        status = self.status()
        if status.state == "fresh":
            return
        task = self._start_refresh("expired")
        if task is not None and (wait or not status.usable):
            # Shielded: a caller that gives up (client gone, timeout) must not
            # cancel the fetch the other waiters share.
            await asyncio.shield(task)

    def prefetch(self) -> None:
        """Start fetching the set in the background (at start-up), so requests find it.

        Every server process has its own cache, and a readiness probe warms only the one
        that answers it: without this the first request to each other process waited for
        the fetch, and failed with 503 if the issuer was slow just then. A start-up fetch
        that fails does not count towards the retry spacing: the first request still
        fetches at once.
        """
        self._start_refresh("startup")

    async def aclose(self) -> None:
        """Wait for a refresh in flight (bounded by its timeout), so none outlives its source.

        Call it before closing the HTTP client or whatever the loader reads from.
        """
        task = self._inflight
        if task is not None:
            await asyncio.wait([task])

    def status(self) -> KeySetStatus:
        if self._fetched_at is None:
            return KeySetStatus("empty", None, 0, self._last_error)
        age = self._clock() - self._fetched_at
        state: KeySetState
        if age < self.ttl_seconds:
            state = "fresh"
        elif age < self.max_age_seconds:
            state = "stale"
        else:
            state = "expired"
        return KeySetStatus(state, age, len(self._keys), self._last_error)

    def _lookup(self, kid: str) -> jwt.PyJWK | None:
        if not self.status().usable:
            raise KeySetUnavailable("no usable key set; the issuer could not be reached")
        return self._keys.get(kid)

    def _start_refresh(self, reason: RefreshReason) -> asyncio.Task[None] | None:
        """The fetch in flight, or a new one; None when the last attempt was too recent."""
        if self._inflight is not None:
            return self._inflight
        now = self._clock()
        spacing = (
            self.min_refresh_interval_seconds
            if self.status().usable
            else self.unusable_retry_seconds
        )
        if self._attempted_at is not None and now - self._attempted_at < spacing:
            return None
        self._attempted_at = now
        self._inflight = asyncio.create_task(self._fetch_and_store(reason))
        return self._inflight

    async def _fetch_and_store(self, reason: RefreshReason) -> None:
        try:
            keys = await self._fetch()
        # Broad on purpose: this may run in the background with nobody to raise to
        # (e.g. the client closed at shutdown), and the old set must stay in use.
        except Exception as exc:  # noqa: BLE001
            self._last_error = str(exc) if isinstance(exc, _FetchError) else type(exc).__name__
            JWKS_REFRESHES.labels(reason=reason, outcome="error").inc()
            logger.warning(
                "jwks_refresh_failed", url=self.url, reason=reason, error=self._last_error
            )
            if reason == "startup":
                self._attempted_at = None
        else:
            self._keys = keys
            self._fetched_at = self._clock()
            self._last_error = None
            JWKS_REFRESHES.labels(reason=reason, outcome="ok").inc()
            logger.info("jwks_refreshed", url=self.url, reason=reason, keys=sorted(keys))
        finally:
            self._inflight = None

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        document = await self._source()
        members = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(members, list):
            raise _FetchError("no keys member")
        keys: dict[str, jwt.PyJWK] = {}
        for member in members:
            key = self._usable_key(member)
            if key is not None and key.key_id is not None:
                keys[key.key_id] = key
        if not keys:
            # Keep the old set: an empty answer is far more often a broken deploy
            # than a deliberate revocation of every key.
            raise _FetchError("no usable signing keys")
        return keys

    async def _download(self, http: httpx.AsyncClient) -> Any:
        try:
            response = await http.get(
                self.url, timeout=self.timeout_seconds, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise _FetchError(type(exc).__name__) from exc
        if response.status_code != 200:
            raise _FetchError(f"status {response.status_code}")
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:
            raise _FetchError("invalid JSON") from exc

    async def _load(self, loader: JWKSLoader) -> Any:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await loader()
        except TimeoutError as exc:
            raise _FetchError("loader timed out") from exc

    def _usable_key(self, member: object) -> jwt.PyJWK | None:
        if not isinstance(member, Mapping) or not self._is_signature_key(member):
            return None
        if PRIVATE_MEMBERS.intersection(member):
            logger.warning("jwks_private_key_published", url=self.url, kid=member["kid"])
            return None
        try:
            key = jwt.PyJWK(dict(member))
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            # One malformed key must not cost us the rest of the set.
            return None
        return key if key.algorithm_name in self.algorithms else None

    def _is_signature_key(self, member: Mapping[str, Any]) -> bool:
        kid = member.get("kid")
        ops = member.get("key_ops")
        alg = member.get("alg")
        return (
            isinstance(kid, str)
            and bool(kid)
            and member.get("use", "sig") == "sig"
            and (ops is None or (isinstance(ops, list) and "verify" in ops))
            # Symmetric keys would let anyone holding the JWKS forge tokens.
            and member.get("kty") != "oct"
            and (alg is None or (isinstance(alg, str) and alg in self.algorithms))
        )
