"""The learning-rate range test: `POST /v1/jobs:lr_range_test` and its result.

A test is a job (queue, quota, budgets, lease and cancel as any other) whose spec is the
one given with enough epochs for `steps` batches and no schedule; a row in `lr_range_tests`
marks it, and the worker drives its rate batch by batch (core/lr_range_test.py) and stores
the series there when it ends. `GET /v1/jobs/{id}/lr_range_test` reads it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from core.errors import DatasetError, SpecError, SpecErrors
from core.lr_range_test import RangeTestSpec
from core.spec import Spec
from service.api.common import find_job, not_found
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.job_specs import checked_spec
from service.limits import refuse_when_storage_full
from service.schemas.common import responses
from service.schemas.jobs import JobOut, JobPath
from service.schemas.lr_range_tests import LrRangeTestBody, LrRangeTestOut
from store import lr_range_tests, submissions
from store.errors import QuotaExceeded
from store.resources import job_json
from store.statuses import status_event

bp = APIBlueprint(
    "lr_range_tests", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)


def _in_spec(field: str | None) -> str:
    return f"spec.{field}" if field else "spec"


def _checked(session: Any, tenant: str, raw: Any) -> tuple[Spec, dict[str, Any]]:
    """The job spec checked as `POST /v1/jobs` checks one, every error named `spec.<field>`."""
    if not isinstance(raw, dict):
        raise validation_error("spec", "is required: a job spec (a JSON object)")
    try:
        spec, _, report = checked_spec(session, tenant, raw)
    except SpecError as exc:
        errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
        raise SpecError.many([SpecError(_in_spec(e.field), e.message) for e in errors]) \
            from exc
    except DatasetError as exc:
        raise DatasetError(exc.message, _in_spec(exc.field or "dataset")) from exc
    except ApiError as exc:
        if exc.errors:
            exc.errors = [{**e, "field": _in_spec(e.get("field"))} for e in exc.errors]
            exc.detail = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        raise
    return spec, report


@bp.post("/jobs:lr_range_test", responses=responses({202: JobOut}, 409, 413, 415))
def submit_lr_range_test(body: LrRangeTestBody) -> tuple[Response, int, dict[str, str]]:
    """Start a learning-rate range test of a spec: a short job; 202 + Location.

    The job raises the rate exponentially batch by batch from `min_lr` to `max_lr` over
    `steps` batches, stops once the smoothed loss passes 4x its minimum, stores no
    checkpoints, and suggests a rate (`GET /v1/jobs/{id}/lr_range_test`, docs/lr-range-test.md).
    """
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise validation_error("body", "must be a JSON object with spec, min_lr, max_lr, steps")
    unknown = sorted(set(raw) - {"spec", "min_lr", "max_lr", "steps"})
    if unknown:
        raise validation_error(unknown[0], "is not a field of a range test (spec, min_lr, "
                                           "max_lr, steps)")
    limits = services().settings.limits
    test = RangeTestSpec.from_dict(raw, max_steps=limits.max_lr_range_steps)
    tenant = current_tenant()
    with transaction() as session:
        spec, report = _checked(session, tenant, raw.get("spec"))
        job_spec = Spec.from_dict(test.job_spec(spec.to_dict(), int(report["n_samples"])))
        if job_spec.training.epochs > limits.max_epochs:
            raise validation_error("steps", (
                f"{test.steps} batches take {job_spec.training.epochs} epochs of this spec, "
                f"more than the limit of {limits.max_epochs}: lower steps or the batch size"))
        refuse_when_storage_full(session, tenant, limits)
        outcome = submissions.submit(
            session, tenant, job_spec.to_dict(), report["dataset_id"], None, None,
            cap=limits.max_concurrent_jobs, first_event=status_event("queued"))
        if outcome.job is None:
            raise QuotaExceeded(outcome.active, limits.max_concurrent_jobs)
        lr_range_tests.create(session, outcome.job["id"], test.min_lr, test.max_lr, test.steps)
        out = job_json(outcome.job)
    services().dispatcher.train_job(out["id"])
    return jsonify(out), 202, {"Location": f"/v1/jobs/{out['id']}"}


@bp.get("/jobs/<job_id>/lr_range_test", responses=responses({200: LrRangeTestOut}, 404))
def get_lr_range_test(path: JobPath) -> Response:
    """The range test's (lr, loss) series and suggested rate; 404 for a job that is not one."""
    with read_session() as session:
        job = find_job(session, path.job_id)
        row = lr_range_tests.get(session, job.id)
        if row is None:
            raise not_found("learning-rate range test", job.id)
        result = row.result or {}
        return jsonify({
            "job_id": job.id, "status": job.status, "stop_reason": job.stop_reason,
            "min_lr": row.min_lr, "max_lr": row.max_lr, "steps": row.steps,
            "series": result.get("series", []),
            "min_smoothed_loss": result.get("min_smoothed_loss"),
            "suggestion": result.get("suggestion"),
        })
