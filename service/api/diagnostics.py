"""`GET /v1/jobs/{id}/diagnostics`: a job's per-layer diagnostics as epoch series.

The rows and their series are core.diagnostics' (the worker stores one row per epoch);
this view checks the query against the job's model and renders them with the job's warnings.
"""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from core.diagnostics import by_layer
from service.api.common import find_job
from service.context import read_session, services
from service.errors import validation_error
from service.schemas.common import responses
from service.schemas.diagnostics import Diagnostics, DiagnosticsQuery
from service.schemas.jobs import JobPath

bp = APIBlueprint(
    "diagnostics", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)


@bp.get("/jobs/<job_id>/diagnostics", responses=responses({200: Diagnostics}, 404))
def job_diagnostics(path: JobPath, query: DiagnosticsQuery) -> Response:
    """Per layer with parameters (and per ReLU layer), one value per epoch: weight norm, RMS
    gradient norm, update ratio, dead-unit share; and the job's warnings (docs/diagnostics.md)."""
    from store import diagnostics

    with read_session() as session:
        job = find_job(session, path.job_id)
        spec = job.spec or {}
        layers = (spec.get("model") or {}).get("layers") or []
        if query.layer is not None and query.layer >= len(layers):
            raise validation_error("layer", f"the model has layers 0 to {len(layers) - 1}, "
                                   f"got {query.layer}")
        # Every epoch: a job has at most max_epochs of them.
        rows = diagnostics.series(session, job.id, after_epoch=query.after_epoch,
                                  limit=services().settings.limits.max_epochs)
        warnings = list(job.warnings or [])
    enabled = bool((spec.get("training") or {}).get("diagnostics", True))
    return jsonify(job_id=path.job_id, enabled=enabled, layers=by_layer(rows, query.layer),
                   warnings=warnings)
