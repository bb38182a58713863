"""Per-key rate limits and per-tenant quotas (README: Configuration).

Rate limits count per API key (its hash, never the key) and endpoint, in fixed windows that
open at a key's first request, in Redis when the broker is Redis, so every gunicorn worker
and API host shares one budget; embedded mode counts in memory. A request over the limit gets
429 problem+json with `Retry-After` (the window's remaining seconds).

The counting is ours rather than Flask-Limiter's: its per-request machinery (limit
resolution, exemption scopes, URL building) cost ~35% of a predict request's CPU before any
counting (benchmarks/service/README.md). Hits are claimed from the shared counter in chunks of
1/`CLAIM_FRACTION` of the limit (one Lua INCRBY + PEXPIRE + PTTL) and spent locally, so a
process asks Redis once per chunk instead of once per request: a Redis round trip was ~20% of
a predict request's CPU. The price is bounded: each process may hold up to a chunk it does not
use before the window ends, so a key can be refused up to (processes x chunk) hits early, at
most 5% of the limit per process; limits under `CLAIM_FRACTION` are counted one by one, exactly.
Once a window is used up, the refusal is cached locally until it ends. A Redis that is down
must not take the API down: counting falls back to memory for `FALLBACK_S`.

Quotas (chosen statuses, documented in docs/architecture.md):
- concurrent active jobs (queued + running) per tenant: 429 `quota-exceeded` with Retry-After,
  because waiting for a job to finish is exactly what makes a retry succeed;
- stored bytes (datasets + checkpoints) per tenant: 413 `storage-quota-exceeded`, because the
  upload does not fit and only deleting data (not waiting) helps.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, request
from sqlalchemy.orm import Session

from config.settings import Limits, Settings
from service.errors import ApiError

log = logging.getLogger(__name__)

FALLBACK_S = 5.0
KEY_PREFIX = "weightsmith:rate"
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$")
CLAIM_FRACTION = 20
# INCRBY a chunk; a counter without an expiry (a new window) gets one; returns the count and
# the milliseconds left in the window.
_CLAIM_LUA = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


@dataclass(frozen=True)
class RateLimit:
    amount: int
    seconds: int
    text: str


def parse_rate_limits(value: str, setting: str = "WEIGHTSMITH_RATE_LIMIT") -> list[RateLimit]:
    """ "50 per second; 1000/hour" -> limits; a malformed part is a ValueError naming it."""
    out = []
    for part in re.split(r"[;,]", value):
        if not part.strip():
            continue
        match = _LIMIT.match(part.lower())
        if match is None:
            raise ValueError(f"{setting}: cannot read {part.strip()!r}; "
                             "expected e.g. '50 per second' or '1000/hour'")
        amount, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
        out.append(RateLimit(amount, multiple * UNITS[unit], part.strip()))
    return out


def rate_limit_key() -> str:
    """The resolved key (its hash, set by service/auth.py): one budget per key, however the
    header was spelled; the client address for the rest (service/client_address.py)."""
    digest = g.get("key_digest")
    if digest:
        return "key:" + digest[:32]
    return "ip:" + (request.remote_addr or "unknown")


def storage_uri(settings: Settings) -> str:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


@dataclass
class Allowance:
    """Hits this process claimed from a key's current window and has not spent yet."""

    left: int
    until: float  # time.monotonic() at which the window ends


class RateLimiter:
    """Fixed-window counters: `hit(name)` -> (allowed, retry_after_s, the limit's text)."""

    def __init__(self, limits: list[RateLimit], uri: str, *, prefix: str = KEY_PREFIX) -> None:
        self.limits = limits
        self.prefix = prefix
        self.text = "; ".join(limit.text for limit in limits)
        self.enabled = True
        self._allowances: dict[str, Allowance] = {}
        self._memory: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._script: Any = None
        if uri != "memory://":
            import redis

            client = redis.Redis.from_url(uri, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._script = client.register_script(_CLAIM_LUA)

    def hit(self, name: str) -> tuple[bool, int, str]:
        for limit in self.limits:
            retry = self._take(self._key(limit, name), limit)
            if retry is not None:
                return False, max(1, retry), limit.text
        return True, 0, ""

    def refused(self, name: str) -> int | None:
        """Seconds until `name` may be counted again, if this process knows a window of it
        is used up; None otherwise. Counts nothing."""
        now = time.monotonic()
        with self._lock:
            for limit in self.limits:
                allowance = self._allowances.get(self._key(limit, name))
                if allowance is not None and allowance.until > now and allowance.left < 0:
                    return max(1, int(allowance.until - now + 0.999))
        return None

    def _key(self, limit: RateLimit, name: str) -> str:
        return f"{self.prefix}:{limit.seconds}:{limit.amount}:{name}"

    def _take(self, key: str, limit: RateLimit) -> int | None:
        """Spend one hit of `key`'s window: None when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            allowance = self._allowances.get(key)
            if allowance is not None and allowance.until > now:
                if allowance.left > 0:
                    allowance.left -= 1
                    return None
                if allowance.left < 0:  # the window is used up: refused until it ends
                    return int(allowance.until - now + 0.999)
        chunk = max(1, limit.amount // CLAIM_FRACTION)
        count, seconds_left = self._claim(key, chunk, limit.seconds)
        granted = max(0, min(chunk, limit.amount - (count - chunk)))
        with self._lock:
            if len(self._allowances) > 100_000:
                self._allowances = {k: v for k, v in self._allowances.items() if v.until > now}
            # granted - 1 left after this hit; -1 marks a used-up window
            self._allowances[key] = Allowance(granted - 1, now + seconds_left)
        return None if granted else int(seconds_left + 0.999)

    def _claim(self, key: str, chunk: int, seconds: int) -> tuple[int, float]:
        """Add `chunk` to the window's count: (the count after, seconds until it ends)."""
        if self._script is not None and time.monotonic() >= self._down_until:
            try:
                count, ms_left = self._script(keys=[key], args=[seconds * 1000, chunk])
                return int(count), max(int(ms_left), 1) / 1000
            except Exception as exc:  # Redis down or refusing: count in memory for a while
                log.warning("rate limit store unavailable (%s); counting in memory", exc)
                self._down_until = time.monotonic() + FALLBACK_S
        now = time.monotonic()
        with self._lock:
            if len(self._memory) > 100_000:
                self._memory = {k: v for k, v in self._memory.items() if v[1] > now}
            count, expires = self._memory.get(key, (0, now + seconds))
            if expires <= now:
                count, expires = 0, now + seconds
            self._memory[key] = (count + chunk, expires)
        return count + chunk, expires - now


def init_app(app: Flask, settings: Settings) -> RateLimiter:
    limiter = RateLimiter(parse_rate_limits(settings.limits.rate_limit), storage_uri(settings))

    @app.before_request
    def _rate_limit() -> None:
        if not limiter.enabled or not request.path.startswith("/v1/"):
            return
        allowed, retry, text = limiter.hit(f"{rate_limit_key()}:{request.endpoint}")
        if not allowed:
            raise ApiError(429, f"rate limit exceeded ({text}); retry in {retry} s",
                           kind="rate-limited", headers={"Retry-After": str(retry)})

    app.extensions["weightsmith_limiter"] = limiter
    return limiter


class StoredBytes:
    """Tenants' stored bytes as last read, so that a submission stays one statement.

    Job submission is the API's hottest write (one round trip on PostgreSQL, see
    store/submissions.py); summing a tenant's datasets and checkpoints on every one would
    triple it. A reading is reused for ``TTL_S`` while it is under ``FRESH_SHARE`` of the
    quota: a submission stores no bytes, uploads and imports check the quota exactly, and a
    worker stops a job whose checkpoint would pass it, so a stale reading of a tenant far from
    the quota decides nothing wrong. Near or over the quota, every check reads again (a
    deletion counts at once).
    """

    TTL_S = 5.0
    FRESH_SHARE = 0.9

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}

    def used(self, session: Session, tenant_id: str, limits: Limits) -> int:
        from store import usage

        seen = self._seen.get(tenant_id)
        now = time.monotonic()
        if seen is not None and seen[1] > now \
                and seen[0] < self.FRESH_SHARE * limits.max_stored_bytes:
            return seen[0]
        used = usage.stored_bytes(session, tenant_id)
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen[tenant_id] = (used, now + self.TTL_S)
        return used


def refuse_when_storage_full(session: Session, tenant_id: str, limits: Limits) -> None:
    """413 for a submit, resume, fork or reproduce while the tenant's stored bytes are at or
    over the quota: the job's first checkpoint would pass it (the worker would stop it)."""
    full = storage_full(session, tenant_id, limits)
    if full is not None:
        raise full


def storage_full(session: Session, tenant_id: str, limits: Limits) -> ApiError | None:
    """The 413 of :func:`refuse_when_storage_full`, or None while there is room."""
    from service.context import services

    extras = services().extras
    gate: StoredBytes | None = extras.get("stored_bytes")
    if gate is None:  # first check of this app; a lost race only costs one reading
        gate = extras.setdefault("stored_bytes", StoredBytes())
    used = gate.used(session, tenant_id, limits)
    if used >= limits.max_stored_bytes:
        return ApiError(
            413,
            f"{used} bytes stored (datasets, checkpoints, imports); the tenant's quota is"
            f" {limits.max_stored_bytes} bytes, and a job needs room for its checkpoints:"
            " delete jobs, checkpoints or datasets first",
            kind="storage-quota-exceeded",
        )
    return None


def check_storage(session: Session, tenant_id: str, new_bytes: int, limits: Limits) -> None:
    from store import usage

    used = usage.stored_bytes(session, tenant_id)
    if used + new_bytes > limits.max_stored_bytes:
        raise ApiError(
            413,
            f"storing {new_bytes} more bytes would exceed the tenant's quota of"
            f" {limits.max_stored_bytes} bytes ({used} used); delete datasets, jobs or"
            " checkpoints to free space",
            kind="storage-quota-exceeded",
        )
