"""`POST /v1/jobs/{id}/fork`: a new job that starts from one of a job's checkpoints.

With ``optimizer_state: "keep"`` the child continues the parent exactly as a resume would (its
optimizer's moments, schedule, random streams and epoch count), under the parent's spec with
the overrides merged in; with ``"reset"`` it starts at epoch 1 from the checkpoint's weights.
Any job with a checkpoint can be forked, a succeeded one included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from service.api.common import find_job
from service.auth import current_tenant
from service.context import services, transaction
from service.errors import ApiError, validation_error
from service.job_specs import checked_spec
from service.limits import refuse_when_storage_full
from service.schemas.common import responses
from service.schemas.forks import ForkBody
from service.schemas.jobs import JobOut, JobPath
from store import checkpoints as store_checkpoints
from store import lineage, submissions
from store.errors import QuotaExceeded
from store.resources import job_json
from store.statuses import status_event

bp = APIBlueprint(
    "forks", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}],
)

# What "keep" carries over from the checkpoint: a change to these would be silently undone
# by the restored state, so it needs "reset".
KEPT_BY_STATE = ("optimizer.type", "optimizer.learning_rate", "training.lr_schedule",
                 "training.dtype", "training.seed")


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: objects key by key, anything else replaced.

    An object whose ``type`` the override changes is replaced whole: adam's betas mean
    nothing to sgd, so the new type starts from its own defaults.
    """
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping) \
                and value.get("type", old.get("type")) == old.get("type"):
            out[key] = merged(old, value)
        else:
            out[key] = value
    return out


def _at(spec: Mapping[str, Any], path: str) -> Any:
    value: Any = spec
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _checkpoint(session: Any, job_id: str, body: ForkBody) -> Any:
    rows = store_checkpoints.list_for_job(session, job_id)
    if body.checkpoint_id is not None:
        found = [r for r in rows if r.id == body.checkpoint_id]
        field, what = "checkpoint_id", f"checkpoint {body.checkpoint_id!r} of job {job_id}"
    elif body.epoch is not None:
        # The final one first: at the same epoch it holds what the run ended with.
        found = sorted((r for r in rows if r.epoch == body.epoch),
                       key=lambda r: r.kind != "final")
        field, what = "epoch", f"job {job_id} kept no checkpoint at epoch {body.epoch}"
    else:
        found = sorted(rows, key=lambda r: (r.epoch, r.kind == "final"))[-1:]
        field, what = "checkpoint_id", f"job {job_id} has no checkpoint yet"
    if not found:
        raise ApiError(404 if body.checkpoint_id else 409, what, kind="no-checkpoint",
                       errors=[{"field": field, "message": what}])
    return found[0]


@bp.post("/jobs/<job_id>/fork", responses=responses({202: JobOut}, 404, 409, 413, 422, 429))
def fork_job(path: JobPath, body: ForkBody) -> tuple[Response, int, dict[str, str]]:
    """A new job from one of this job's checkpoints, with `overrides` applied."""
    tenant = current_tenant()
    limits = services().settings.limits
    with transaction() as session:
        parent = find_job(session, path.job_id)
        checkpoint = _checkpoint(session, parent.id, body)
        if "model" in body.overrides:
            raise validation_error("overrides.model", "a fork keeps its parent's architecture "
                                   "(its weights must fit); start a new job instead")
        raw = merged(parent.spec, body.overrides)
        if "dataset" not in body.overrides and parent.dataset_id is not None:
            # The parent's data, not whatever its dataset's name names now (the newest upload).
            raw["dataset"] = parent.dataset_id
        spec, _, report = checked_spec(session, tenant, raw)
        refuse_when_storage_full(session, tenant, services().settings.limits)
        child = spec.to_dict()
        if body.optimizer_state == "keep":
            for key in KEPT_BY_STATE:
                if _at(child, key) != _at(parent.spec, key):
                    raise validation_error(f"overrides.{key}", "keep continues the parent's "
                                           "optimizer, schedule and random streams; changing "
                                           "this needs optimizer_state \"reset\"")
            if spec.training.epochs <= checkpoint.epoch:
                raise validation_error("overrides.training.epochs", f"must exceed the "
                                       f"checkpoint's epoch ({checkpoint.epoch}) to train on "
                                       "with keep")
        outcome = submissions.submit(
            session, tenant, child, report["dataset_id"], None, None,
            cap=limits.max_concurrent_jobs, first_event=status_event("queued"))
        if outcome.job is None:
            raise QuotaExceeded(outcome.active, limits.max_concurrent_jobs)
        lineage.create_fork(session, outcome.job["id"], parent.id, checkpoint.id,
                            int(checkpoint.epoch), body.optimizer_state)
        out = job_json(outcome.job, lineage.links(session, outcome.job["id"]))
    services().dispatcher.train_job(out["id"])
    return jsonify(out), 202, {"Location": f"/v1/jobs/{out['id']}"}
