"""Bearer API keys -> tenant. Keys are stored only as SHA-256 hashes (docs/api.md, issue 5).

A key is looked up by its hash (an indexed equality, so the secret itself is never compared in
the database), then compared again with `hmac.compare_digest` (store.keys.tenant_for_key).
Resolved keys are cached for a few seconds: predict's latency budget has no room for a database
round trip per request, and a revoked key stops working within `CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import threading
import time

from flask import Flask, g, request

from service.errors import ApiError

CACHE_SECONDS = 10.0
MAX_KEY_LENGTH = 256
PROTECTED_PREFIX = "/v1/"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="weightsmith"'}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when absent or malformed."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_KEY_LENGTH:
        return None
    if not token.isascii() or not token.isprintable():
        return None
    return token


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


def _lookup_tenant(token: str) -> str | None:
    from service.app import read_session
    from store import keys

    with read_session() as session:
        return keys.tenant_for_key(session, token)


def current_tenant() -> str:
    """The tenant id of the authenticated request (set by the before_request hook)."""
    tenant: str = g.tenant_id
    return tenant


def init_app(app: Flask) -> None:
    cache = KeyCache()
    app.extensions["weightsmith_keys"] = cache

    @app.before_request
    def _authenticate() -> None:
        if not request.path.startswith(PROTECTED_PREFIX):
            return
        token = bearer_token()
        if token is None:
            raise ApiError(401, "missing or malformed 'Authorization: Bearer <key>' header",
                           kind="unauthorized", headers=_CHALLENGE)
        digest = hash_key(token)
        tenant = cache.get(digest)
        if tenant is None:
            tenant = _lookup_tenant(token)
            if tenant is None:
                raise ApiError(401, "invalid or revoked API key", kind="unauthorized",
                               headers=_CHALLENGE)
            cache.put(digest, tenant)
        g.tenant_id = tenant
