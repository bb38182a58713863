"""Per-key rate limits and per-tenant quotas (DESIGN §8).

Rate limits count per API key (its hash, never the key) and endpoint, in fixed windows that
open at a key's first request, in Redis when the broker is Redis, so every gunicorn worker
and API host shares one budget; embedded mode counts in memory. A request over the limit gets
429 problem+json with `Retry-After` (the window's remaining seconds).

The counting is ours rather than Flask-Limiter's: its per-request machinery (limit
resolution, exemption scopes, URL building) cost ~35% of a predict request's CPU before any
counting (benchmarks/service/README.md). Here a request costs one Redis round trip (a Lua
INCR + EXPIRE + TTL, as Flask-Limiter's fixed window did) or a dict update. A Redis that is
down must not take the API down: counting falls back to memory for `FALLBACK_S`.

Quotas (chosen statuses, documented in docs/architecture.md):
- concurrent active jobs (queued + running) per tenant: 429 `quota-exceeded` with Retry-After,
  because waiting for a job to finish is exactly what makes a retry succeed;
- stored bytes (datasets + checkpoints) per tenant: 413 `storage-quota-exceeded`, because the
  upload does not fit and only deleting data (not waiting) helps.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from sqlalchemy.orm import Session

from config.settings import Limits, Settings
from service.errors import ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_QUOTA_S = 30
FALLBACK_S = 5.0
KEY_PREFIX = "weightsmith:rate"
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$")
# INCR; the first hit of a window sets its expiry; returns the count and the seconds left.
_HIT_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


@dataclass(frozen=True)
class RateLimit:
    amount: int
    seconds: int
    text: str


def parse_rate_limits(value: str) -> list[RateLimit]:
    """ "50 per second; 1000/hour" -> limits; a malformed part is a ValueError naming it."""
    out = []
    for part in re.split(r"[;,]", value):
        if not part.strip():
            continue
        match = _LIMIT.match(part.lower())
        if match is None:
            raise ValueError(f"WEIGHTSMITH_RATE_LIMIT: cannot read {part.strip()!r}; "
                             "expected e.g. '50 per second' or '1000/hour'")
        amount, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
        out.append(RateLimit(amount, multiple * UNITS[unit], part.strip()))
    return out


def rate_limit_key() -> str:
    header = request.headers.get("Authorization", "")
    if header:
        return "key:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "unknown")


def storage_uri(settings: Settings) -> str:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


class RateLimiter:
    """Fixed-window counters: `hit(name)` -> (allowed, retry_after_s, the limit's text)."""

    def __init__(self, limits: list[RateLimit], uri: str) -> None:
        self.limits = limits
        self.enabled = True
        self._memory: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._script: Any = None
        if uri != "memory://":
            import redis

            client = redis.Redis.from_url(uri, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._script = client.register_script(_HIT_LUA)

    def hit(self, name: str) -> tuple[bool, int, str]:
        for limit in self.limits:
            key = f"{KEY_PREFIX}:{limit.seconds}:{limit.amount}:{name}"
            count, ttl = self._count(key, limit.seconds)
            if count > limit.amount:
                return False, max(1, ttl), limit.text
        return True, 0, ""

    def _count(self, key: str, seconds: int) -> tuple[int, int]:
        if self._script is not None and time.monotonic() >= self._down_until:
            try:
                count, ttl = self._script(keys=[key], args=[seconds])
                return int(count), int(ttl)
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
            self._memory[key] = (count + 1, expires)
        return count + 1, int(expires - now + 0.999)


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


def check_concurrent_jobs(session: Session, tenant_id: str, limits: Limits) -> None:
    from store import jobs

    cap = limits.max_concurrent_jobs
    refuse_over_quota(jobs.count_active_up_to(session, tenant_id, cap), limits)


def refuse_over_quota(active: int, limits: Limits) -> None:
    """429 when the tenant already has `max_concurrent_jobs` jobs queued or running."""
    if active >= limits.max_concurrent_jobs:
        raise ApiError(
            429,
            f"{active} jobs are queued or running; the limit is {limits.max_concurrent_jobs}"
            " concurrent jobs per tenant",
            kind="quota-exceeded",
            headers={"Retry-After": str(RETRY_AFTER_QUOTA_S)},
        )


def check_storage(session: Session, tenant_id: str, new_bytes: int, limits: Limits) -> None:
    from store import usage

    used = usage.stored_bytes(session, tenant_id)
    if used + new_bytes > limits.max_stored_bytes:
        raise ApiError(
            413,
            f"storing {new_bytes} more bytes would exceed the tenant's quota of"
            f" {limits.max_stored_bytes} bytes ({used} used); delete datasets to free space",
            kind="storage-quota-exceeded",
        )
