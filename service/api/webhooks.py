"""`/v1/webhooks`: register an endpoint for events, ping it, and read what was delivered.

The secret that signs every body is generated here and shown once, in the 201; delivery is
the worker's (worker/webhooks.py), whose rule for what a target may be is the one checked here.
"""

from __future__ import annotations

import secrets

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import validation_error
from service.schemas.common import responses
from service.schemas.webhooks import (
    DeliveryPage,
    PingOut,
    WebhookBody,
    WebhookOut,
    WebhookPage,
    WebhookPath,
)
from store import webhooks as store_webhooks
from store.models import Webhook
from store.resources import isoformat
from worker.webhooks import EVENT_TYPES, target_problem

bp = APIBlueprint(
    "webhooks", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="webhooks")], abp_security=[{"bearer": []}],
)

SECRET_PREFIX = "whsec_"


def webhook_json(hook: Webhook, secret: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {"id": hook.id, "url": hook.url, "events": list(hook.events),
                              "description": hook.description,
                              "created_at": isoformat(hook.created_at)}
    if secret is not None:
        out["secret"] = secret
    return out


@bp.post("/webhooks", responses=responses({201: WebhookOut}, 422))
def create_webhook(body: WebhookBody) -> tuple[Response, int, dict[str, str]]:
    """Register `url` for `events`; the answer carries the signing secret, once."""
    unknown = sorted(set(body.events) - set(EVENT_TYPES))
    if unknown:
        raise validation_error("events", f"unknown event types {unknown}; expected any of "
                               f"{sorted(EVENT_TYPES)}")
    problem = target_problem(body.url, services().settings.webhooks_allow_private)
    if problem is not None:
        raise validation_error("url", problem)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction() as session:
        hook = store_webhooks.create(session, current_tenant(), url=body.url,
                                     events=sorted(set(body.events)),
                                     description=body.description, secret=secret)
        out = webhook_json(hook, secret)
    return jsonify(out), 201, {"Location": f"/v1/webhooks/{out['id']}"}


@bp.get("/webhooks", responses=responses({200: WebhookPage}))
def list_webhooks() -> Response:
    """The tenant's webhooks (without their secrets)."""
    with read_session() as session:
        items = [webhook_json(h) for h in store_webhooks.list_for_tenant(session,
                                                                          current_tenant())]
    return jsonify(items=items, next_cursor=None)


@bp.get("/webhooks/<webhook_id>", responses=responses({200: WebhookOut}, 404))
def get_webhook(path: WebhookPath) -> Response:
    with read_session() as session:
        hook = store_webhooks.get(session, current_tenant(), path.webhook_id)
        if hook is None:
            raise not_found("webhook", path.webhook_id)
        return jsonify(webhook_json(hook))


@bp.delete("/webhooks/<webhook_id>", responses=responses({204: None}, 404))
def delete_webhook(path: WebhookPath) -> tuple[str, int]:
    """Delete the webhook; its pending deliveries are dropped with it."""
    with transaction() as session:
        if not store_webhooks.delete(session, current_tenant(), path.webhook_id):
            raise not_found("webhook", path.webhook_id)
    return "", 204


@bp.post("/webhooks/<webhook_id>/ping", responses=responses({202: PingOut}, 404))
def ping_webhook(path: WebhookPath) -> tuple[Response, int]:
    """Send a signed `ping` event to the webhook now (see its deliveries for the answer)."""
    tenant = current_tenant()
    with transaction() as session:
        if store_webhooks.get(session, tenant, path.webhook_id) is None:
            raise not_found("webhook", path.webhook_id)
        [delivery_id] = store_webhooks.enqueue(session, tenant, "ping",
                                               {"webhook_id": path.webhook_id},
                                               webhook_id=path.webhook_id)
        event_id = store_webhooks.event_id_of(session, delivery_id)
    services().dispatcher.deliver_webhook(delivery_id)
    return jsonify(delivery_id=delivery_id, event_id=event_id), 202


@bp.get("/webhooks/<webhook_id>/deliveries", responses=responses({200: DeliveryPage}, 404))
def webhook_deliveries(path: WebhookPath) -> Response:
    """Every attempt, newest first: the event, the receiver's status code or the error."""
    with read_session() as session:
        tenant = current_tenant()
        if store_webhooks.get(session, tenant, path.webhook_id) is None:
            raise not_found("webhook", path.webhook_id)
        items = store_webhooks.attempts(session, tenant, path.webhook_id)
    for item in items:
        item["started_at"] = isoformat(item["started_at"])
    return jsonify(items=items, next_cursor=None)
