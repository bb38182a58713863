"""`/v1/jobs`: dry run, submit (idempotent), list, read, cancel, resume, metrics, checkpoints.

A job is created in one transaction and sent to the broker only after it commits
(the task takes the job's id); a broker that is down leaves it `queued` for `reconcile` to re-send.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy.exc import IntegrityError

from service.api.common import (
    check_idempotency_key,
    find_job,
    not_found,
    storable_idempotency_key,
)
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.job_specs import checked_spec
from service.limits import refuse_when_storage_full, storage_full
from service.schemas.checkpoints import CheckpointPage
from service.schemas.common import responses
from service.schemas.jobs import (
    IDEMPOTENCY_KEY_PARAMETER,
    DryRunReport,
    JobListQuery,
    JobOut,
    JobPage,
    JobPath,
    JobSpecBody,
    MetricsPage,
    MetricsQuery,
    ResumeBody,
)
from store.errors import QuotaExceeded
from store.resources import job_json
from store.statuses import status_event
from worker.webhooks import enqueue_job_event

bp = APIBlueprint(
    "jobs", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)

RESUME_BODY = {
    "required": False,
    "content": {"application/json": {"schema": ResumeBody.model_json_schema()}},
}


def _spec_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise validation_error("body", "the job spec must be a JSON object")
    return body




@bp.post("/jobs:validate", responses=responses({200: DryRunReport}, 415))
def validate_job(body: JobSpecBody) -> Response:
    """Dry run: per-layer shapes and parameters, FLOPs per epoch, memory estimate."""
    with read_session() as session:
        _, _, report = checked_spec(session, current_tenant(), _spec_body())
    return jsonify(report)


@bp.post(
    "/jobs",
    responses=responses({202: JobOut, 200: JobOut}, 409, 413, 415),
    openapi_extensions={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
def submit_job(body: JobSpecBody) -> tuple[Response, int, dict[str, str]]:
    """Submit a job; 202 with Location. The same Idempotency-Key and body return the same job."""
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    key = None if key is None else storable_idempotency_key(key)
    raw = _spec_body()
    body_hash = hashlib.sha256(
        json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    try:
        return _submit(raw, key, body_hash)
    except IntegrityError:
        if key is None:
            raise
        # A concurrent request with the same key committed first: this one is now a replay.
        return _submit(raw, key, body_hash)


def _submit(
    raw: dict[str, Any], key: str | None, body_hash: str
) -> tuple[Response, int, dict[str, str]]:
    from store import jobs as store_jobs
    from store import submissions

    tenant = current_tenant()
    limits = services().settings.limits
    # Validate first (CPU only, unless the spec names an upload), then one statement checks
    # the key and the quota and stores the job with its "queued" event: one round trip on
    # PostgreSQL, with no BEGIN/COMMIT (store.submissions). A bad spec gets its 422 before
    # a full quota's 429, and an earlier job with the same key wins over both.
    with read_session() as session:
        try:
            spec, _, report = checked_spec(session, tenant, raw)
        except Exception:
            # The key's first request may have passed when this body no longer does (its
            # dataset deleted since, a limit lowered): answering it is still a replay.
            existing = None if key is None else store_jobs.job_id_for_key(session, tenant, key)
            if existing is None:
                raise
            return _replay(store_jobs.get(session, tenant, existing), body_hash)
        full = storage_full(session, tenant, limits)  # outside the try: a database error
        if full is not None:  # is a 503 (service/errors.py), not a failed replay lookup
            existing = None if key is None else store_jobs.job_id_for_key(session, tenant, key)
            if existing is None:
                raise full
            return _replay(store_jobs.get(session, tenant, existing), body_hash)
    outcome = submissions.submit(
        services().engine, tenant, spec.to_dict(), report["dataset_id"], key, body_hash,
        cap=limits.max_concurrent_jobs, first_event=status_event("queued"),
    )
    if outcome.existing_id is not None:  # _replay answers 409 for another body
        with read_session() as session:
            return _replay(store_jobs.get(session, tenant, outcome.existing_id), body_hash)
    if outcome.job is None:  # neither made nor found: the quota is full
        raise QuotaExceeded(outcome.active, limits.max_concurrent_jobs)
    out = job_json(outcome.job)
    services().dispatcher.train_job(out["id"])
    return jsonify(out), 202, {"Location": f"/v1/jobs/{out['id']}"}


def _replay(job: Any, body_hash: str) -> tuple[Response, int, dict[str, str]]:
    if job.request_hash != body_hash:
        raise ApiError(409, "this Idempotency-Key was used with a different request body",
                       kind="idempotency-conflict")
    return jsonify(job_json(job)), 200, {"Location": f"/v1/jobs/{job.id}",
                                         "Idempotent-Replayed": "true"}


@bp.get("/jobs", responses=responses({200: JobPage}))
def list_jobs(query: JobListQuery) -> Response:
    """Your jobs, newest first, optionally by status; cursor pages."""
    from store import jobs as store_jobs
    from store import lineage

    with read_session() as session:
        rows, next_cursor = store_jobs.list_page(
            session, current_tenant(), status=query.status, limit=query.limit, cursor=query.cursor
        )
        links = lineage.links_of_page(session, [j.id for j in rows])
        items = [job_json(j, links.get(j.id)) for j in rows]
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/jobs/<job_id>", responses=responses({200: JobOut}, 404))
def get_job(path: JobPath) -> Response:
    """Status, progress, latest and best metrics, stop and failure reasons, timestamps."""
    with read_session() as session:
        from store import lineage

        job = find_job(session, path.job_id)
        return jsonify(job_json(job, lineage.links(session, job.id)))


@bp.post("/jobs/<job_id>/cancel", responses=responses({202: JobOut, 200: JobOut}, 404, 409))
def cancel_job(path: JobPath) -> tuple[Response, int]:
    """Cooperative cancel: 200 when it was still queued (cancelled now), 202 when running."""
    from store import jobs as store_jobs

    with transaction() as session:
        cancelled = store_jobs.cancel(session, current_tenant(), path.job_id)
        # A queued job ends here, so no worker will tell the job's webhooks either.
        deliveries = (enqueue_job_event(session, cancelled.job, "job.cancelled")
                      if cancelled.ended else [])
        out = job_json(cancelled.job)
    for delivery_id in deliveries:
        services().dispatcher.deliver_webhook(delivery_id)
    return jsonify(out), 200 if cancelled.ended else 202


@bp.post(
    "/jobs/<job_id>/resume",
    responses=responses({202: JobOut}, 404, 409, 413, 415),
    openapi_extensions={"requestBody": RESUME_BODY},
)
def resume_job(path: JobPath) -> tuple[Response, int, dict[str, str]]:
    """Continue a cancelled or failed job from its latest checkpoint, maybe with more epochs."""
    from store import jobs as store_jobs

    body = request.get_json(silent=True) if request.content_length else None
    extra = ResumeBody.model_validate({} if body is None else body).epochs
    limits = services().settings.limits
    with transaction() as session:
        job = store_jobs.resume(session, current_tenant(), path.job_id, extra or 0,
                                max_epochs=limits.max_epochs,
                                active_cap=limits.max_concurrent_jobs)
        # The budgets may have changed since submit: a refusal rolls the resume back.
        checked_spec(session, current_tenant(), job.spec)
        refuse_when_storage_full(session, current_tenant(), limits)
        out = job_json(job)
    services().dispatcher.train_job(out["id"])
    return jsonify(out), 202, {"Location": f"/v1/jobs/{out['id']}"}


@bp.delete("/jobs/<job_id>", responses=responses({204: None}, 404, 409))
def delete_job(path: JobPath) -> tuple[str, int]:
    """Delete a finished job with its checkpoints, metrics and events (409 while it is
    queued or running, or while an active job starts from one of its checkpoints)."""
    from store import checkpoints as store_checkpoints
    from store.deletion import delete_job as delete
    from store.errors import NotFound

    with transaction() as session:
        kept = [c.id for c in store_checkpoints.list_for_job(session, path.job_id)]
        try:
            delete(session, current_tenant(), path.job_id)
        except NotFound:
            raise not_found("job", path.job_id) from None
    for checkpoint_id in kept:
        services().model_cache.discard(checkpoint_id)
    return "", 204


@bp.get("/jobs/<job_id>/metrics", responses=responses({200: MetricsPage}, 404))
def job_metrics(path: JobPath, query: MetricsQuery) -> Response:
    """Per-epoch metrics after `after_epoch`; `next_cursor` is the next `after_epoch`."""
    from store import metrics as store_metrics

    with read_session() as session:
        find_job(session, path.job_id)
        items = store_metrics.history(
            session, path.job_id, after_epoch=query.after_epoch, limit=query.limit
        )
    next_cursor = str(items[-1]["epoch"]) if len(items) == query.limit else None
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/jobs/<job_id>/checkpoints", responses=responses({200: CheckpointPage}, 404))
def job_checkpoints(path: JobPath) -> Response:
    """The kept checkpoints of a job, oldest first."""
    from service.api.checkpoints import checkpoint_json
    from store import checkpoints as store_checkpoints

    with read_session() as session:
        find_job(session, path.job_id)
        rows = store_checkpoints.list_for_job(session, path.job_id)
        items = [checkpoint_json(c) for c in rows]
    return jsonify(items=items, next_cursor=None)
