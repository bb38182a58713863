"""`GET /v1/jobs/{id}/events`: Server-Sent Events of status changes and epoch metrics.

Each event carries `id: <seq>` (the job's event sequence), so a client that reconnects with
`Last-Event-ID` (or `?last_event_id=`) misses nothing. A comment line is sent as a heartbeat
every `SSE_HEARTBEAT_SECONDS` so proxies keep the connection open; a stream lasts at most
`SSE_MAX_SECONDS` (the client reconnects, EventSource does so by itself) and ends once the job
is terminal and every event has been sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, request, stream_with_context
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from service.api.common import not_found
from service.app import services
from service.auth import current_tenant
from service.errors import validation_error
from service.schemas.common import MAX_INT32, responses
from service.schemas.jobs import JobPath

bp = APIBlueprint(
    "events", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BATCH = 500


# One event of the stream (the schema applies per event, as OpenAPI 3.2's itemSchema does).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {"enum": ["status", "epoch"]},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"type": "object"}},
        "retry": {"type": "integer"},
    },
}


class EventsQuery(BaseModel):
    last_event_id: int | None = Field(None, ge=0, le=MAX_INT32,
                                      description="resume after this sequence")


def format_event(seq: int, kind: str, data: Any) -> str:
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _start_after(query: EventsQuery) -> int:
    header = (request.headers.get("Last-Event-ID") or "").strip()
    if header:
        # isdigit() alone accepts "²" and other digits int() refuses: ASCII only.
        if not (header.isascii() and header.isdigit()) or int(header) > MAX_INT32:
            raise validation_error("Last-Event-ID", "must be a non-negative 32-bit integer")
        return int(header)
    return query.last_event_id or 0


def _poll(job_id: str, after: int) -> tuple[list[Any], str | None]:
    """Events after `after`, and the job's status read in the same session."""
    from store import events as store_events
    from store import jobs as store_jobs

    with services().session_factory() as session:
        rows = store_events.after(session, job_id, after, limit=BATCH)
        events = [(int(r.seq), str(r.type), r.data) for r in rows]
        job = store_jobs.get_job(session, current_tenant(), job_id)
        return events, (job.status if job is not None else None)


def stream(job_id: str, after: int) -> Iterator[str]:
    cfg = current_app.config
    max_seconds = float(cfg["SSE_MAX_SECONDS"])
    heartbeat = float(cfg["SSE_HEARTBEAT_SECONDS"])
    poll = float(cfg["SSE_POLL_SECONDS"])
    started = last_sent = time.monotonic()
    yield f"retry: {int(poll * 1000) + 1000}\n\n"
    while True:
        events, status = _poll(job_id, after)
        for seq, kind, data in events:
            yield format_event(seq, kind, data)
            after = seq
            last_sent = time.monotonic()
        if len(events) == BATCH:
            continue
        if status is None or status in TERMINAL:
            return
        now = time.monotonic()
        if now - started >= max_seconds:
            return
        if now - last_sent >= heartbeat:
            yield ": heartbeat\n\n"
            last_sent = now
        time.sleep(poll)


@bp.get(
    "/jobs/<job_id>/events",
    responses=responses({200: {"description": "text/event-stream of status and epoch events",
                               "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}}},
                        404),
)
def job_events(path: JobPath, query: EventsQuery) -> Response:
    """Live events: `event: status|epoch`, `id: seq`; honours Last-Event-ID."""
    from store import jobs as store_jobs

    after = _start_after(query)
    with services().session_factory() as session:
        if store_jobs.get_job(session, current_tenant(), path.job_id) is None:
            raise not_found("job", path.job_id)
    return Response(
        stream_with_context(stream(path.job_id, after)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
