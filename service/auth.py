"""Bearer API keys -> tenant. Keys are stored only as SHA-256 hashes (docs/api.md, issue 5).

A key is looked up by its hash (an indexed equality, so the secret itself is never compared in
the database), then compared again with `hmac.compare_digest` (store.keys.tenant_for_key).
Resolved keys are cached for a few seconds: predict's latency budget has no room for a database
round trip per request, and a key revoked elsewhere stops working within `CACHE_SECONDS` (at
once in the process that revoked it).

The header is parsed strictly (RFC 9110 credentials: one scheme, case-insensitive, one space,
a token68), so spacing or case variants of one key are refused rather than counted as other
keys. Requests whose authentication fails are counted per client address
(`WEIGHTSMITH_AUTH_FAILURE_LIMIT`): each costs a key lookup, so once an address has used up
its budget its unknown keys get 429 without one (issue 19). The address is
`request.remote_addr`, which service/client_address.py sets (X-Forwarded-For only from a
trusted proxy).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

from flask import Flask, g, request

from service.errors import ApiError
from service.limits import RateLimiter, parse_rate_limits, storage_uri

CACHE_SECONDS = 10.0
MAX_KEY_LENGTH = 256
PROTECTED_PREFIX = "/v1/"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="weightsmith"'}
# RFC 9110 section 11.4 / RFC 6750: `Bearer` (any case), exactly one space, a token68.
_CREDENTIALS = re.compile(r"([Bb][Ee][Aa][Rr][Ee][Rr]) ([A-Za-z0-9._~+/-]+=*)")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when absent or malformed."""
    match = _CREDENTIALS.fullmatch(request.headers.get("Authorization", ""))
    if match is None or len(match[2]) > MAX_KEY_LENGTH:
        return None
    return match[2]


class KeyCache:
    """hash -> (tenant_id, expires_at); thread-safe, bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, digest: str) -> str | None:
        with self._lock:
            hit = self._items.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: str, tenant_id: str) -> None:
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()
            self._items[digest] = (tenant_id, time.monotonic() + CACHE_SECONDS)

    def discard(self, digest: str) -> None:
        with self._lock:
            self._items.pop(digest, None)


def _lookup_tenant(token: str) -> str | None:
    from service.context import read_session
    from store import keys

    with read_session() as session:
        return keys.tenant_for_key(session, token)


def current_tenant() -> str:
    """The tenant id of the authenticated request (set by the before_request hook)."""
    tenant: str = g.tenant_id
    return tenant


def current_key_digest() -> str:
    """The sha256 of the request's key: what the rate limit counts by (service/limits.py)."""
    digest: str = g.key_digest
    return digest


def init_app(app: Flask) -> None:
    from service.context import EXTENSION_KEY

    settings = app.extensions[EXTENSION_KEY].settings
    cache = KeyCache()
    failures = RateLimiter(
        parse_rate_limits(settings.limits.auth_failure_limit, "WEIGHTSMITH_AUTH_FAILURE_LIMIT"),
        storage_uri(settings), prefix="weightsmith:authfail")
    app.extensions["weightsmith_keys"] = cache
    app.extensions["weightsmith_auth_failures"] = failures

    def refuse(detail: str) -> ApiError:
        """Count a failed authentication of this address; 401, or 429 past its budget."""
        address = request.remote_addr or "unknown"
        allowed, retry, text = failures.hit(address) if failures.enabled else (True, 0, "")
        if not allowed:
            return _too_many_failures(retry, text)
        return ApiError(401, detail, kind="unauthorized", headers=_CHALLENGE)

    @app.before_request
    def _authenticate() -> None:
        if not request.path.startswith(PROTECTED_PREFIX):
            return
        token = bearer_token()
        if token is None:
            raise refuse("missing or malformed 'Authorization: Bearer <key>' header (one "
                         "space between the scheme and the key)")
        digest = hash_key(token)
        tenant = cache.get(digest)
        if tenant is None:
            retry = failures.refused(request.remote_addr or "unknown")
            if retry is not None and failures.enabled:
                # This address used up its failures: no lookup for a key we do not know.
                raise _too_many_failures(retry, failures.text)
            tenant = _lookup_tenant(token)
            if tenant is None:
                raise refuse("invalid or revoked API key")
            cache.put(digest, tenant)
        g.tenant_id = tenant
        g.key_digest = digest


def _too_many_failures(retry: int, text: str) -> ApiError:
    return ApiError(429, f"too many failed authentications from this address ({text}); "
                    f"retry in {retry} s", kind="rate-limited",
                    headers={"Retry-After": str(retry)})
