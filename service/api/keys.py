"""`/v1/keys`: the tenant's API keys, listed (by prefix only) and revoked.

The same rule as `weightsmith keys list|revoke` (store/keys.py): a revoked key is refused by
every process within service.auth's CACHE_SECONDS, by this one at once. A key may revoke
itself; its next request is a 401.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag

from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, transaction
from service.schemas.common import responses
from service.schemas.keys import KeyList, KeyPath
from store.resources import isoformat

bp = APIBlueprint(
    "keys", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="keys")], abp_security=[{"bearer": []}],
)


def key_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "prefix": row.prefix, "created_at": isoformat(row.created_at),
            "revoked_at": isoformat(row.revoked_at)}


@bp.get("/keys", responses=responses({200: KeyList}))
def list_keys() -> Response:
    """The tenant's API keys, oldest first (prefix only; revoked ones too)."""
    from store import keys

    with read_session() as session:
        rows = keys.list_for_tenant(session, current_tenant())
        return jsonify({"items": [key_json(row) for row in rows]})


@bp.delete("/keys/<key_id>", responses=responses({204: None}, 404))
def revoke_key(path: KeyPath) -> tuple[str, int]:
    """Revoke one of the tenant's keys (revoking a revoked key changes nothing)."""
    from store import keys

    with transaction() as session:
        row = keys.get(session, current_tenant(), path.key_id)
        if row is None:
            raise not_found("key", path.key_id)
        keys.revoke(session, current_tenant(), path.key_id)
        digest = row.key_hash
    current_app.extensions["weightsmith_keys"].discard(digest)
    return "", 204
