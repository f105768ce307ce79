"""Who is calling: the API key a client presents, and nothing else.

Clients send `Authorization: Bearer <api key>` (or `x-api-key: <api key>`, as Anthropic's
clients do). Every component authenticates the caller's own key: the API's Lambda
authorizer and gateway, the stream front door and the worker, on every path. No shared
credential stands in for a tenant: a component that calls another on a client's behalf
(a worker following or cancelling a run at its owner) forwards the client's own
credential headers (`credential_headers`), and the callee authenticates them again.

Key lookups are cached per process for `cache_seconds` (positive and negative), so a
revoked key stops working on every front door and worker within that bound. In the worker,
a key in use is re-read in the background before its entry expires (one read at a time),
so a busy key never waits for DynamoDB.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.errors import AuthenticationFailed
from services.telemetry.context import note_tenant
from services.tenancy.keys import ApiKey, KeyStore, hash_key
from services.web.singleflight import SingleFlight

CREDENTIAL_HEADERS = ("authorization", "x-api-key")

_MAX_CACHED = 10_000
# The last share of an entry's life in which a request renews it in the background.
REFRESH_AHEAD = 0.2


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    key_id: str


def bearer_token(headers: Mapping[str, str]) -> str:
    """The API key from `Authorization: Bearer ...`, or from `x-api-key` as Anthropic's
    clients send it (headers with lower-case names). Authorization wins when both come."""
    value = headers.get("authorization")
    if not value:
        key = headers.get("x-api-key", "").strip()
        if key:
            return key
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "or 'x-api-key: <key>'.",
            code="missing_api_key",
        )
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "The Authorization header must be 'Bearer <key>'.", code="invalid_authorization_header"
        )
    return token


def credential_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's own credential headers, as a component forwards them on its behalf
    (`headers` with lower-case names, or a case-insensitive mapping)."""
    return {name: headers[name] for name in CREDENTIAL_HEADERS if headers.get(name)}


class Authenticator:
    """Authenticates requests against the key store, with a bounded per-process cache."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._cache_seconds = cache_seconds
        self._clock = clock
        # key hash -> (expiry, the key record, its principal when the key is active)
        self._cache: dict[str, tuple[float, ApiKey | None, Principal | None]] = {}
        self._lock = threading.Lock()
        self._reads: SingleFlight[ApiKey | None] = SingleFlight()

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller of a request. Blocks on a cache miss (one DynamoDB read)."""
        secret = bearer_token(headers)
        hit, record = self._from_cache(secret)
        principal = _principal(record if hit else self._lookup(secret))
        note_tenant(principal.tenant_id)  # the access line's tenant
        return principal

    async def authenticate_async(self, headers: Mapping[str, str]) -> Principal:
        """As `authenticate`, running a cache miss's read in a thread, off the event loop."""
        secret = bearer_token(headers)
        digest = hash_key(secret)
        entry = self._cache.get(digest)
        now = self._clock()
        if entry is None or entry[0] <= now:
            record = await self._reads.run(digest, lambda: self._lookup(secret))
            principal = _principal(record)
        else:
            if entry[0] - now < self._cache_seconds * REFRESH_AHEAD:
                # Renewed before it expires, in the background: a busy key never waits for
                # a read, and a revocation still shows within `cache_seconds`.
                self._reads.refresh(digest, lambda: self._lookup(secret))
            principal = entry[2] or _principal(entry[1])
        note_tenant(principal.tenant_id)  # the access line's tenant
        return principal

    def _from_cache(self, secret: str) -> tuple[bool, ApiKey | None]:
        entry = self._cache.get(hash_key(secret))
        if entry is None or entry[0] <= self._clock():
            return False, None
        return True, entry[1]

    def _lookup(self, secret: str) -> ApiKey | None:
        record = self._keys.lookup(secret)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            principal = _principal(record) if record is not None and record.active else None
            self._cache[hash_key(secret)] = (
                self._clock() + self._cache_seconds,
                record,
                principal,
            )
        return record


def _principal(record: ApiKey | None) -> Principal:
    if record is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    if not record.active:
        raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
    return Principal(record.tenant_id, record.key_id)
