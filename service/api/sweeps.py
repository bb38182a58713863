"""`/v1/sweeps`: submit (idempotent), list, read, trials, cancel, events (docs/sweeps.md).

A sweep is stored in one transaction and its first `sweep_step` is sent after the commit; a
broker that is down leaves it `queued` for reconcile, which steps every active sweep.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, current_app, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy.exc import IntegrityError

from service import sweeps as sweep_rules
from service.api.common import check_idempotency_key, not_found, storable_idempotency_key
from service.api.events import EventsQuery, _start_after
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.event_stream import StreamTiming
from service.schemas.common import PageQuery, responses
from service.schemas.jobs import IDEMPOTENCY_KEY_PARAMETER
from service.schemas.sweeps import SweepBody, SweepOut, SweepPage, SweepPath, TrialPage, TrialsQuery
from service.sweep_stream import SweepEventStream
from store.statuses import TERMINAL_STATUSES

bp = APIBlueprint(
    "sweeps", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="sweeps")], abp_security=[{"bearer": []}],
)

EVENT_TYPES = ["status", "trial_started", "rung_reported", "trial_pruned", "trial_retried",
               "trial_finished", "new_best", "sweep_finished"]


def _find(session: Any, sweep_id: str) -> Any:
    from store import sweeps as store_sweeps

    sweep = store_sweeps.get(session, current_tenant(), sweep_id)
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def _step(sweep_id: str) -> None:
    from worker.celery_app import SWEEP_STEP_TASK

    try:
        services().dispatcher.celery.send_task(SWEEP_STEP_TASK, args=[sweep_id])
    except Exception:
        services().dispatcher.failed += 1


@bp.post("/sweeps", responses=responses({202: SweepOut, 200: SweepOut}, 409, 415),
         openapi_extensions={"parameters": [IDEMPOTENCY_KEY_PARAMETER]})
def submit_sweep(body: SweepBody) -> tuple[Response, int, dict[str, str]]:
    """Submit a sweep; 202 with Location. The same Idempotency-Key and body return it again."""
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise validation_error("body", "the sweep must be a JSON object")
    key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    key = None if key is None else storable_idempotency_key(key)
    body_hash = hashlib.sha256(
        json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    tenant = current_tenant()
    spec = sweep_rules.parse(raw, services().settings.limits)
    with read_session() as session:
        spec = sweep_rules.check(session, tenant, spec, services().settings.limits)
    try:
        with transaction() as session:
            sweep, created = sweep_rules.create(session, tenant, spec, key, body_hash)
            out = sweep_rules.resource(session, sweep)
    except IntegrityError:  # a concurrent request with the same key committed first
        with transaction() as session:
            sweep, created = sweep_rules.create(session, tenant, spec, key, body_hash)
            out = sweep_rules.resource(session, sweep)
    headers = {"Location": f"/v1/sweeps/{out['id']}"}
    if not created:
        return jsonify(out), 200, {**headers, "Idempotent-Replayed": "true"}
    services().dispatcher.sweep_step(out["id"])  # lost: reconcile steps active sweeps
    return jsonify(out), 202, headers


@bp.get("/sweeps", responses=responses({200: SweepPage}))
def list_sweeps(query: PageQuery) -> Response:
    """Your sweeps, newest first; cursor pages."""
    from store import sweeps as store_sweeps

    with read_session() as session:
        rows, next_cursor = store_sweeps.list_page(session, current_tenant(), query.limit,
                                                   query.cursor)
        items = [sweep_rules.resource(session, s) for s in rows]
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/sweeps/<sweep_id>", responses=responses({200: SweepOut}, 404))
def get_sweep(path: SweepPath) -> Response:
    """Status, trial counts, the best trial, epochs run against the budget."""
    with read_session() as session:
        return jsonify(sweep_rules.resource(session, _find(session, path.sweep_id)))


@bp.get("/sweeps/<sweep_id>/trials", responses=responses({200: TrialPage}, 404))
def list_trials(path: SweepPath, query: TrialsQuery) -> Response:
    """The trials, by index or best first; each is a job (GET /v1/jobs/{job_id})."""
    with read_session() as session:
        items = sweep_rules.trial_items(session, _find(session, path.sweep_id), query.order)
    start = int(query.cursor or 0)
    page = items[start:start + query.limit]
    more = start + query.limit < len(items)
    return jsonify(items=page, next_cursor=str(start + query.limit) if more else None)


@bp.post("/sweeps/<sweep_id>/cancel", responses=responses({202: SweepOut}, 404, 409))
def cancel_sweep(path: SweepPath) -> tuple[Response, int]:
    """No new trials; running ones stop cooperatively; the sweep then ends cancelled."""
    from store import sweeps as store_sweeps

    with transaction() as session:
        sweep = _find(session, path.sweep_id)
        if sweep.status in TERMINAL_STATUSES:
            raise ApiError(409, f"sweep {sweep.id} already finished ({sweep.status})",
                           kind="conflict")
        store_sweeps.request_cancel(session, sweep.id)
        session.refresh(sweep)
        out = sweep_rules.resource(session, sweep)
    services().dispatcher.sweep_step(out["id"])  # lost: reconcile steps active sweeps
    return jsonify(out), 202


@bp.get("/sweeps/<sweep_id>/events", responses=responses({200: {
    "description": "text/event-stream: " + ", ".join(EVENT_TYPES),
    "content": {"text/event-stream": {"schema": {"type": "object"}}}}}, 404))
def sweep_events(path: SweepPath, query: EventsQuery) -> Response:
    """Live events (trial started, rung reported, pruned, finished, new best, sweep
    finished), `id: seq`; honours Last-Event-ID."""
    after = _start_after(query)
    with read_session() as session:
        _find(session, path.sweep_id)
    cfg = current_app.config
    timing = StreamTiming(float(cfg["SSE_MAX_SECONDS"]), float(cfg["SSE_HEARTBEAT_SECONDS"]),
                          float(cfg["SSE_POLL_SECONDS"]))
    # direct_passthrough: the ASGI front follows the stream on its event loop (as for jobs)
    return Response(SweepEventStream(services().session_factory, path.sweep_id, after, timing),
                    mimetype="text/event-stream", direct_passthrough=True,
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
