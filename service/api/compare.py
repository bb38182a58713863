"""Reading runs side by side: `/v1/jobs:compare` and a job's metrics as CSV.

The comparison itself is `core.compare` (pure functions over stored specs and histories);
this view fetches the tenant's jobs and renders it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from core.compare import metric_summary, spec_differences
from service.api.common import find_job
from service.context import read_session, services
from service.errors import validation_error
from service.schemas.common import responses
from service.schemas.compare import CompareQuery, Comparison
from service.schemas.jobs import JobPath

bp = APIBlueprint(
    "compare", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)

CSV_RESPONSE = {"description": "one row per epoch: `epoch`, then each metric in name order",
                "content": {"text/csv": {"schema": {"type": "string"}}}}


def _history(session: Any, job_id: str) -> list[dict[str, Any]]:
    from store import metrics as store_metrics

    # Every epoch: a job has at most max_epochs of them.
    limit = services().settings.limits.max_epochs
    return store_metrics.history(session, job_id, limit=limit)


@bp.get("/jobs:compare", responses=responses({200: Comparison}, 404))
def compare_jobs(query: CompareQuery) -> Response:
    """The spec paths whose values differ, and each job's best and last value per metric."""
    ids = query.ids.split(",")
    if len(set(ids)) != len(ids):
        raise validation_error("ids", "lists a job more than once")
    jobs: list[dict[str, Any]] = []
    specs: dict[str, Any] = {}
    metrics: dict[str, dict[str, Any]] = {}
    with read_session() as session:
        for job_id in ids:
            job = find_job(session, job_id)
            jobs.append({"id": job.id, "name": job.name, "status": job.status,
                         "epochs_done": int(job.epoch_done or 0)})
            specs[job.id] = job.spec
            for name, summary in metric_summary(_history(session, job.id)).items():
                metrics.setdefault(name, {})[job.id] = summary
    return jsonify(jobs=jobs, spec_differences=spec_differences(specs), metrics=metrics)


@bp.get("/jobs/<job_id>/metrics.csv", responses=responses({200: CSV_RESPONSE}, 404))
def job_metrics_csv(path: JobPath) -> Response:
    """Every epoch's metrics as CSV (empty cells where a metric has no value)."""
    with read_session() as session:
        find_job(session, path.job_id)
        rows = _history(session, path.job_id)
    names = sorted({name for row in rows for name in row} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["epoch", *names], restval="",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{path.job_id}-metrics.csv"'})
