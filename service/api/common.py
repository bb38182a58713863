"""Helpers every blueprint shares: the JSON body guard, tenant lookups, idempotency keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Flask, current_app, request

from service.context import services
from service.errors import ApiError
from service.spec_limits import SPEC_ENDPOINTS, check_spec_size

# Endpoints that take a JSON body only: another Content-Type is a 415, not a vague 422.
JSON_ENDPOINTS = frozenset(
    {
        "jobs.validate_job",
        "jobs.submit_job",
        "jobs.resume_job",
        "predict.predict_job",
        "predict.predict_checkpoint",
        "webhooks.create_webhook",
        "models.create_model",
        "models.create_version",
        "models.set_alias",
        "models.predict_model",
        "forks.fork_job",
        "lr_range_tests.submit_lr_range_test",
    }
)

# Endpoints that read their body as a stream, whatever its type (a JSON dataset is a file
# like any other): the guard below must not read it whole first (issue 18).
STREAMED_ENDPOINTS = frozenset({"datasets.upload_dataset", "uploads.put_upload"})


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests lists/objects deeper than `limit` (iterative: no recursion)."""
    if not isinstance(value, list | dict):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        # Only containers go on the stack: a matrix of numbers costs one pass over its rows.
        stack.extend((v, depth + 1) for v in children if isinstance(v, list | dict))
    return False


def _brackets(raw: bytes) -> int:
    return raw.count(b"[") + raw.count(b"{")


def parse_json_body(raw: bytes) -> Any:
    """Decode a JSON body strictly: UTF-8, valid JSON, bounded nesting; else 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid UTF-8", kind="malformed-json") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise ApiError(400, "request body nests too deeply", kind="malformed-json") from None
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", kind="malformed-json") \
            from None
    limit = int(current_app.config["MAX_JSON_DEPTH"])
    # Fewer brackets than the limit cannot nest deeper than it: skip the walk (predict's case).
    if _brackets(raw) > limit and json_depth_exceeds(value, limit):
        raise ApiError(400, f"request body nests deeper than {limit} levels",
                       kind="malformed-json")
    return value


def init_body_guard(app: Flask) -> None:
    @app.before_request
    def _guard_body() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        if req.method not in ("POST", "PUT", "PATCH") or not req.path.startswith("/v1/"):
            return
        json_body = is_json_mimetype(req.mimetype) and req.endpoint not in STREAMED_ENDPOINTS
        if not json_body and req.endpoint in JSON_ENDPOINTS and (
            req.content_length or req.headers.get("Transfer-Encoding")
        ):
            raise ApiError(415, f"expected Content-Type application/json, got "
                           f"{req.mimetype or 'none'!r}", kind="unsupported-media-type")
        if json_body:
            raw = req.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413 from Werkzeug
            if req.endpoint in SPEC_ENDPOINTS:  # bounded before it is parsed
                check_spec_size(raw, services().settings.limits, "spec")
            value = parse_json_body(raw) if raw.strip() else None
            # flask-openapi3 and the views read request.get_json(): hand them the checked value.
            req._cached_json = (value, value)


def check_idempotency_key(value: str | None) -> str | None:
    """1-255 visible ASCII characters (RFC 9110 token-ish), else 400."""
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise ApiError(
            400,
            "Idempotency-Key must be 1-255 visible ASCII characters",
            kind="invalid-idempotency-key",
            errors=[{"field": "Idempotency-Key", "message": "1-255 visible ASCII characters"}],
        )
    return value


def storable_idempotency_key(key: str) -> str:
    """The key as stored: the column holds 200 characters, the header allows 255, so a longer
    key is stored as its SHA-256 (deterministic: the same key still finds the same job)."""
    if len(key) <= 200:
        return key
    return "sha256:" + hashlib.sha256(key.encode("ascii")).hexdigest()


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what} {ident!r} not found", kind="not-found")


def find_job(session: Any, job_id: str) -> Any:
    """The current tenant's job, or a 404 (another tenant's job is not found either)."""
    from service.auth import current_tenant
    from store import jobs as store_jobs

    job = store_jobs.get(session, current_tenant(), job_id)
    if job is None:
        raise not_found("job", job_id)
    return job
