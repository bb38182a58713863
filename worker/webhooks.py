"""Delivering webhook events: which events exist, how a body is signed, where it may go.

Delivery is at least once: a Celery task per attempt (`weightsmith.deliver_webhook`), the
state in `store.webhooks` (an outbox row per event and webhook), retried with exponential
backoff (config/webhooks.py) on 5xx, 408, 429, timeouts and refused connections, and never
in the path of training or of a request: the row is written with the change it reports and
the POST happens later, in whichever worker takes the message.

The API checks a new webhook's URL with :func:`target_problem` too, so the rule that refuses
private targets is written once, here.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store import lineage
from store import webhooks as store_webhooks
from store.columns import utcnow
from store.resources import job_json
from store.statuses import TERMINAL_STATUSES

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO, and a receiver's URL often carries its own
# token: in the worker, its request lines stay out of the logs (errors are still ours).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.INFO)

#: Every event a webhook may subscribe to, with when it fires.
EVENT_TYPES: Mapping[str, str] = {
    "job.succeeded": "a job ended succeeded (its epochs done, early stopping or max runtime)",
    "job.failed": "a job ended failed (a bad spec or data, or its attempts ran out)",
    "job.cancelled": "a job ended cancelled",
    "job.diverged": "a job's loss diverged (it ends failed, stop_reason diverged)",
    "job.stalled": "a running job's worker went silent and another worker took it over",
    "model.alias_moved": "a model's alias was pointed at another version, or removed",
    "batch_prediction.succeeded": "a batch prediction scored every row of its dataset",
    "sweep.succeeded": "a sweep ended succeeded (its trials done, or its time budget spent)",
    "sweep.cancelled": "a sweep ended cancelled (POST /v1/sweeps/{id}/cancel)",
    "sweep.new_best": "a finished trial of a sweep became its best so far",
    "ping": "sent by POST /v1/webhooks/{id}/ping, whatever the subscriptions",
}
SIGNATURE_HEADER = "Weightsmith-Signature"
USER_AGENT = "Weightsmith-Webhooks/1"


def sign(secret: str, timestamp: int, body: str) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def target_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not receive webhooks (None when it may).

    It must be http(s) with a host; unless ``allow_private``, every address the host resolves
    to must be public (not loopback, private, link-local, reserved or multicast), so a webhook
    cannot be aimed at the service's own network.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        return f"its host {parts.hostname!r} does not resolve ({exc})"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        if not address.is_global or address.is_multicast:
            return (f"its host {parts.hostname!r} resolves to the non-public address "
                    f"{address}; set WEIGHTSMITH_WEBHOOKS_ALLOW_PRIVATE=1 to allow it")
    return None


def job_event_type(status: str, stop_reason: str | None) -> str | None:
    """The event of a job's final status (None for a status that is not final)."""
    if status == "failed" and stop_reason == "diverged":
        return "job.diverged"
    if status in TERMINAL_STATUSES:
        return f"job.{status}"
    return None


def enqueue_job_event(s: Session, job: Any, event_type: str) -> list[str]:
    """Outbox rows for ``event_type`` about ``job`` (an ORM Job), in the caller's transaction."""
    return store_webhooks.enqueue(s, job.tenant_id, event_type,
                                  job_json(job, lineage.links(s, job.id)))


def sweep_event_type(status: str) -> str | None:
    """The event of a sweep's final status (None for a status no event reports)."""
    event = f"sweep.{status}"
    return event if event in EVENT_TYPES else None


def retry_delay_s(settings: Settings, attempt: int) -> float | None:
    """Seconds until the attempt after ``attempt`` (from 1), or None when none is left."""
    if attempt >= settings.webhooks.max_attempts:
        return None
    return float(settings.webhooks.retry_base_s * 2 ** (attempt - 1))


def deliver(sessions: sessionmaker[Session], settings: Settings, delivery_id: str, *,
            transport: httpx.BaseTransport | None = None) -> float | None:
    """Make one attempt at a delivery if it is due; seconds until the next one, else None.

    None also when there was nothing to do (delivered, failed for good, or not due: another
    message for it is already on its way).
    """
    hold_s = settings.webhooks.timeout_s + 30.0
    with sessions.begin() as s:
        claimed = store_webhooks.claim(s, delivery_id, hold_s)
    if claimed is None:
        return None
    started = utcnow()
    t0 = time.perf_counter()
    status: int | None = None
    error = target_problem(claimed.url, settings.webhooks_allow_private)
    retryable = False
    if error is None:
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: sign(claimed.secret, timestamp, claimed.body),
                   "Weightsmith-Event-Id": claimed.event_id}
        try:
            with httpx.Client(transport=transport, timeout=settings.webhooks.timeout_s,
                              follow_redirects=False) as client:
                status = client.post(claimed.url, content=claimed.body.encode(),
                                     headers=headers).status_code
            retryable = status >= 500 or status in (408, 429)
        except httpx.TimeoutException:
            error, retryable = "timed out", True
        except httpx.TransportError as exc:
            error, retryable = f"{type(exc).__name__}: {exc}", True
    delivered = status is not None and 200 <= status < 300
    delay = retry_delay_s(settings, claimed.attempt) if retryable else None
    with sessions.begin() as s:
        store_webhooks.record_attempt(
            s, claimed, status_code=status, error=error,
            duration_ms=(time.perf_counter() - t0) * 1000.0, started_at=started,
            retry_at=None if delay is None else utcnow() + timedelta(seconds=delay),
            delivered=delivered)
    # The URL may carry a token of the receiver's: log the delivery, not where it went.
    log.info("webhook delivery %s attempt %d: %s", delivery_id, claimed.attempt,
             status if status is not None else error)
    return delay
