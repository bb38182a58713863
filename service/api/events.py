"""`GET /v1/jobs/{id}/events`: Server-Sent Events of status changes and epoch metrics.

Each event carries `id: <seq>` (the job's event sequence), so a client that reconnects with
`Last-Event-ID` (or `?last_event_id=`) misses nothing. A comment line is sent as a heartbeat
every `SSE_HEARTBEAT_SECONDS` so proxies keep the connection open; a stream lasts at most
`SSE_MAX_SECONDS` (the client reconnects, EventSource does so by itself) and ends once the job
is terminal and every event has been sent. Behind the ASGI front a stream waits without
holding a thread (service/event_stream.py, docs/reliability.md).
"""

from __future__ import annotations

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, services
from service.errors import validation_error
from service.event_stream import EventStream, StreamTiming
from service.schemas.common import MAX_INT32, responses
from service.schemas.jobs import JobPath
from store.statuses import STATUS_EVENT

bp = APIBlueprint(
    "events", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)

# One event of the stream (the schema applies per event, as OpenAPI 3.2's itemSchema does).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {"enum": [STATUS_EVENT, "epoch"]},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"type": "object"}},
        "retry": {"type": "integer"},
    },
}


class EventsQuery(BaseModel):
    last_event_id: int | None = Field(None, ge=0, le=MAX_INT32,
                                      description="resume after this sequence")


def _start_after(query: EventsQuery) -> int:
    header = (request.headers.get("Last-Event-ID") or "").strip()
    if header:
        # isdigit() alone accepts "²" and other digits int() refuses: ASCII only.
        if not (header.isascii() and header.isdigit()) or int(header) > MAX_INT32:
            raise validation_error("Last-Event-ID", "must be a non-negative 32-bit integer")
        return int(header)
    return query.last_event_id or 0


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
    with read_session() as session:
        if store_jobs.get(session, current_tenant(), path.job_id) is None:
            raise not_found("job", path.job_id)
    cfg = current_app.config
    timing = StreamTiming(float(cfg["SSE_MAX_SECONDS"]), float(cfg["SSE_HEARTBEAT_SECONDS"]),
                          float(cfg["SSE_POLL_SECONDS"]))
    # direct_passthrough: the ASGI front gets the EventStream itself and follows it on its
    # event loop, without a thread (service/event_stream.py).
    return Response(
        # Read-only sessions: on SQLite a stream's polls never wait for a worker's commit.
        EventStream(services().read_sessions or services().session_factory, path.job_id,
                    after, timing),
        mimetype="text/event-stream", direct_passthrough=True,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
