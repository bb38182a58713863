"""Per-key rate limits (Flask-Limiter) and per-tenant quotas (DESIGN §8).

Rate limits count per API key (its hash, never the key) in Redis when the broker is Redis, so
every gunicorn worker and API host shares one budget; embedded mode counts in memory. A request
over the limit gets 429 problem+json with `Retry-After`.

Quotas (chosen statuses, documented in docs/architecture.md):
- concurrent active jobs (queued + running) per tenant: 429 `quota-exceeded` with Retry-After,
  because waiting for a job to finish is exactly what makes a retry succeed;
- stored bytes (datasets + checkpoints) per tenant: 413 `storage-quota-exceeded`, because the
  upload does not fit and only deleting data (not waiting) helps.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.orm import Session

from config.settings import Limits, Settings
from service.errors import ApiError, problem

RETRY_AFTER_QUOTA_S = 30


def rate_limit_key() -> str:
    header = request.headers.get("Authorization", "")
    if header:
        return "key:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "unknown")


def storage_uri(settings: Settings) -> str:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def init_app(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        rate_limit_key,
        app=app,
        default_limits=[settings.limits.rate_limit],
        storage_uri=storage_uri(settings),
        # No X-RateLimit-* headers: with Redis they would cost a second round trip on every
        # request. Retry-After is computed only for the 429 itself (below).
        headers_enabled=False,
        strategy="fixed-window",
        key_prefix="weightsmith",
        # A rate-limit store that is down must not take the API down with it.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )

    @limiter.request_filter
    def _only_api() -> bool:
        return not request.path.startswith("/v1/")

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        reset = current.window[0] if current is not None else time.time() + 1
        retry = max(1, math.ceil(reset - time.time()))
        return problem(429, f"rate limit exceeded ({exc.description}); retry in {retry} s",
                       kind="rate-limited", headers={"Retry-After": str(retry)})

    app.extensions["weightsmith_limiter"] = limiter
    return limiter


def check_concurrent_jobs(session: Session, tenant_id: str, limits: Limits) -> None:
    from sqlalchemy import func, select

    from store.models import ACTIVE_STATUSES, Job

    # Count at most `max_concurrent_jobs` rows: the check costs the same with 10 or 10,000
    # queued jobs (store.jobs.count_active would scan them all on every submission).
    capped = (
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE_STATUSES))
        .limit(limits.max_concurrent_jobs)
        .subquery()
    )
    active = int(session.scalar(select(func.count()).select_from(capped)) or 0)
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
