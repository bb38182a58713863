"""A run you can verify: `GET /v1/jobs/{id}/manifest` and `POST /v1/jobs/{id}/reproduce`.

The manifest names everything a run depended on by its digest (spec, data, seed, dtype, the
software and BLAS it ran on) and its results by the digest of their weights. A reproduction
is a new job from the same spec, data and seed; when it ends the worker compares the two
epoch by epoch (worker/store_ops.judge_reproduction) and both jobs show the verdict.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from core.reproducibility import spec_sha256, weights_sha256
from service.api import data
from service.api.checkpoints import pick_checkpoint
from service.api.common import find_job
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError
from service.job_specs import checked_spec
from service.limits import refuse_when_storage_full
from service.schemas.common import responses
from service.schemas.jobs import JobOut, JobPath
from service.schemas.reproducibility import Manifest
from store import checkpoints as store_checkpoints
from store import leases, lineage, lr_range_tests, reproductions, submissions
from store.errors import QuotaExceeded
from store.resources import job_json
from store.statuses import status_event

bp = APIBlueprint(
    "reproducibility", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)


def _dataset_digest(session: Any, job: Any) -> str:
    digest = data.dataset_sha256(session, job)
    if digest is None:
        raise ApiError(409, f"the job's dataset {job.spec.get('dataset')!r} was deleted",
                       kind="conflict")
    return digest


def _checkpoint(session: Any, row: Any) -> dict[str, Any] | None:
    blob = None if row is None else store_checkpoints.get_blob(session, row.id)
    if row is None or blob is None:
        return None
    return {"id": row.id, "epoch": row.epoch, "sha256": row.sha256,
            "weights_sha256": weights_sha256(bytes(blob))}


@bp.get("/jobs/<job_id>/manifest", responses=responses({200: Manifest}, 404, 409))
def job_manifest(path: JobPath) -> Response:
    """What the run depended on and what it produced, each by its sha256."""
    with read_session() as session:
        job = find_job(session, path.job_id)
        training = job.spec.get("training") or {}
        final = next((c for c in reversed(store_checkpoints.list_for_job(session, job.id))
                      if c.kind == "final"), None)
        return jsonify({
            "job_id": job.id,
            "spec_sha256": spec_sha256(job.spec),
            "dataset": {"reference": job.spec.get("dataset"),
                        "sha256": _dataset_digest(session, job)},
            "seed": training.get("seed"),
            "dtype": training.get("dtype"),
            "environment": leases.last_environment(session, job.id),
            "checkpoints": {
                "final": _checkpoint(session, final),
                "best": _checkpoint(session, pick_checkpoint(session, job, "best")),
            },
        })


@bp.post("/jobs/<job_id>/reproduce", responses=responses({202: JobOut}, 404, 409, 413, 429))
def reproduce_job(path: JobPath) -> tuple[Response, int, dict[str, str]]:
    """A new job from the same spec, data and seed; both show the verdict once it ends."""
    tenant = current_tenant()
    limits = services().settings.limits
    with transaction() as session:
        original = find_job(session, path.job_id)
        if original.status != "succeeded":
            raise ApiError(409, f"job {original.id} is {original.status}; only a succeeded "
                           "job can be reproduced", kind="conflict")
        if lr_range_tests.get(session, original.id) is not None:
            # A range test stores no checkpoints to compare; it is deterministic for its
            # seed, so the same request again is its reproduction.
            raise ApiError(409, f"job {original.id} is a learning-rate range test; submit "
                           "the test again to reproduce it", kind="conflict")
        spec, _, _ = checked_spec(session, tenant, dict(original.spec))
        refuse_when_storage_full(session, tenant, limits)
        outcome = submissions.submit(
            session, tenant, spec.to_dict(), original.dataset_id, None, None,
            cap=limits.max_concurrent_jobs, first_event=status_event("queued"))
        if outcome.job is None:
            raise QuotaExceeded(outcome.active, limits.max_concurrent_jobs)
        reproductions.create(session, outcome.job["id"], original.id)
        out = job_json(outcome.job, lineage.links(session, outcome.job["id"]))
    services().dispatcher.train_job(out["id"])
    return jsonify(out), 202, {"Location": f"/v1/jobs/{out['id']}"}
