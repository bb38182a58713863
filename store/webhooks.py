"""Webhooks: a tenant's endpoints, the delivery outbox, and the record of every attempt.

An event becomes one delivery row per subscribed webhook, written in the transaction of the
change it reports (a job's final status), so it cannot be lost between the database and the
broker: the row is the truth, a Celery message only says "look at delivery X now", and
`due` finds what a lost message or a killed worker left behind. A delivery is claimed by one
conditional UPDATE that pushes its `next_attempt_at` past the attempt's timeout, so two
messages for the same delivery never POST at once; the body is fixed when the event happens,
so every attempt sends the same bytes with the same event id (receivers dedupe on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.ids import PREFIXES, new_id
from store.models import Webhook, WebhookAttempt, WebhookDelivery


def create(s: Session, tenant_id: str, *, url: str, events: list[str],
           description: str | None, secret: str) -> Webhook:
    hook = Webhook(tenant_id=tenant_id, url=url, events=list(events), description=description,
                   secret=secret)
    s.add(hook)
    s.flush()
    return hook


def get(s: Session, tenant_id: str, webhook_id: str) -> Webhook | None:
    """The tenant's webhook, filtered by tenant in the query (another's is simply absent)."""
    return s.scalar(sa.select(Webhook).where(Webhook.id == webhook_id,
                                             Webhook.tenant_id == tenant_id))


def list_for_tenant(s: Session, tenant_id: str) -> list[Webhook]:
    return list(s.scalars(sa.select(Webhook).where(Webhook.tenant_id == tenant_id)
                          .order_by(Webhook.id)))


def delete(s: Session, tenant_id: str, webhook_id: str) -> bool:
    """Delete a webhook with its pending deliveries and history; False when there is none."""
    result = s.execute(sa.delete(Webhook).where(Webhook.id == webhook_id,
                                                Webhook.tenant_id == tenant_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def event_body(event_id: str, event_type: str, created_at: datetime,
               data: dict[str, Any]) -> str:
    """The JSON every receiver gets: ``{"id", "type", "created_at", "data"}``."""
    return json.dumps({"id": event_id, "type": event_type,
                       "created_at": created_at.isoformat().replace("+00:00", "Z"),
                       "data": data}, separators=(",", ":"), sort_keys=True)


def enqueue(s: Session, tenant_id: str, event_type: str,
            data: dict[str, Any] | Callable[[], dict[str, Any]], *,
            webhook_id: str | None = None, now: datetime | None = None) -> list[str]:
    """One delivery per webhook of the tenant subscribed to ``event_type``; their ids.

    ``data`` may be a function that makes it, called only when some webhook subscribes (a
    sweep's step would otherwise read the whole sweep for every new best nobody listens to).
    ``webhook_id`` limits it to that webhook whatever its subscriptions (a ping). The ids
    are sent to the broker by the caller after its transaction commits.
    """
    now = now or utcnow()
    query = sa.select(Webhook.id).where(Webhook.tenant_id == tenant_id)
    if webhook_id is not None:
        query = query.where(Webhook.id == webhook_id)
    hooks = [hook_id for hook_id, events in s.execute(query.add_columns(Webhook.events))
             if webhook_id is not None or event_type in (events or [])]
    if not hooks:
        return []
    event_id = new_id(PREFIXES["event"])
    body = event_body(event_id, event_type, now, data() if callable(data) else data)
    rows = [WebhookDelivery(webhook_id=hook_id, event_id=event_id, event_type=event_type,
                            body=body, state="pending", attempts=0, next_attempt_at=now,
                            created_at=now)
            for hook_id in hooks]
    s.add_all(rows)
    s.flush()
    return [row.id for row in rows]


def event_id_of(s: Session, delivery_id: str) -> str:
    return str(s.scalar(sa.select(WebhookDelivery.event_id)
                        .where(WebhookDelivery.id == delivery_id)))


@dataclass(frozen=True)
class Claimed:
    """A delivery this caller may POST now: attempt number ``attempt`` (from 1)."""

    delivery_id: str
    attempt: int
    url: str
    secret: str
    body: str
    event_id: str


def claim(s: Session, delivery_id: str, hold_s: float, *,
          now: datetime | None = None) -> Claimed | None:
    """Take a due, pending delivery for one attempt (None if it is not due or not pending).

    Its ``next_attempt_at`` moves ``hold_s`` ahead, so another message for the same delivery
    finds it not due while this attempt runs; a worker killed mid-attempt leaves it due again
    after ``hold_s``, for `due` to find.
    """
    now = now or utcnow()
    row = s.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
               WebhookDelivery.next_attempt_at <= now)
        .values(attempts=WebhookDelivery.attempts + 1,
                next_attempt_at=now + timedelta(seconds=hold_s))
        .returning(WebhookDelivery.attempts, WebhookDelivery.webhook_id,
                   WebhookDelivery.body, WebhookDelivery.event_id)
    ).one_or_none()
    if row is None:
        return None
    hook = s.get(Webhook, row.webhook_id)
    if hook is None:
        return None
    return Claimed(delivery_id, int(row.attempts), hook.url, hook.secret, row.body, row.event_id)


def record_attempt(s: Session, claimed: Claimed, *, status_code: int | None,
                   error: str | None, duration_ms: float, started_at: datetime,
                   retry_at: datetime | None, delivered: bool) -> None:
    """Log the attempt; the delivery is then delivered, due again at ``retry_at``, or failed."""
    s.add(WebhookAttempt(delivery_id=claimed.delivery_id, attempt=claimed.attempt,
                         status_code=status_code, error=error and error[:500],
                         duration_ms=duration_ms, started_at=started_at))
    state = "delivered" if delivered else ("pending" if retry_at is not None else "failed")
    s.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == claimed.delivery_id)
              .values(state=state, next_attempt_at=retry_at if state == "pending" else None))
    s.flush()


def due(s: Session, *, older_than_s: float, now: datetime | None = None,
        limit: int = 500) -> list[str]:
    """Pending deliveries due for at least ``older_than_s`` (their message was lost)."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    return list(s.scalars(
        sa.select(WebhookDelivery.id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= cutoff)
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)))


def attempts(s: Session, tenant_id: str, webhook_id: str, *,
             limit: int = 100) -> list[dict[str, Any]]:
    """The webhook's newest attempts first: event, state, status code or error, duration."""
    rows = s.execute(
        sa.select(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.event_type,
                  WebhookDelivery.state, WebhookAttempt.attempt, WebhookAttempt.status_code,
                  WebhookAttempt.error, WebhookAttempt.duration_ms, WebhookAttempt.started_at)
        .join(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(Webhook.id == webhook_id, Webhook.tenant_id == tenant_id)
        .order_by(WebhookAttempt.started_at.desc(), WebhookAttempt.attempt.desc())
        .limit(limit))
    return [{"delivery_id": r.id, "event_id": r.event_id, "event_type": r.event_type,
             "state": r.state, "attempt": r.attempt, "status_code": r.status_code,
             "error": r.error, "duration_ms": r.duration_ms, "started_at": r.started_at}
            for r in rows]
