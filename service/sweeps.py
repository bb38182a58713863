"""Submitting and reading sweeps: the rules below the views (docs/architecture.md).

A sweep is checked whole before anything is stored: the body by ``core.sweeps`` (limits from
settings), the base spec as ``POST /v1/jobs`` checks a job (dataset, limits, dry run), and
every corner of the space the same way (``core.sweeps.check_corners``). It is then stored
``queued`` and the first ``sweep_step`` is sent after the commit; a lost message is repaired
by reconcile, which steps every active sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Limits
from core.errors import SpecError
from core.spec import Spec
from core.sweeps import SweepSpec, check_corners
from service.errors import ApiError
from store import sweeps as store_sweeps
from store.columns import utcnow
from store.models import Job, Sweep, SweepTrial
from store.sweep_resources import sweep_json, trial_json


def parse(body: Mapping[str, Any], limits: Limits) -> SweepSpec:
    return SweepSpec.from_dict(body, max_trials=limits.max_sweep_trials,
                               max_concurrent=limits.max_sweep_concurrent)


def check(session: Session, tenant_id: str, spec: SweepSpec, limits: Limits) -> SweepSpec:
    """The base and every corner, as a job submission checks a spec; SpecError if not.

    Returns the sweep with its base's dataset as the resolved id (a spec may name an upload
    by name; the trials must train on the upload this check saw).
    """
    from service.job_specs import checked_spec

    def dry_run(candidate: Spec) -> dict[str, Any]:
        try:
            return checked_spec(session, tenant_id, candidate.to_dict())[2]
        except ApiError as exc:
            first = (exc.errors or [{"field": "", "message": exc.detail}])[0]
            raise SpecError(first["field"], first["message"]) from exc

    try:
        report = dry_run(spec.base_spec)
    except SpecError as exc:
        raise SpecError(f"base.{exc.field}" if exc.field else "base", exc.message) from exc
    check_corners(spec.space, spec.base, dry_run)
    resolved = report.get("dataset_id")
    if resolved is None or resolved == spec.base.get("dataset"):
        return spec
    return parse({**spec.to_dict(), "base": {**spec.base, "dataset": resolved}}, limits)


def create(session: Session, tenant_id: str, spec: SweepSpec, key: str | None,
           body_hash: str) -> tuple[Sweep, bool]:
    """Store the sweep (or find the one this Idempotency-Key made); (sweep, created)."""
    deadline = None if spec.time_budget_s is None else \
        utcnow() + timedelta(seconds=spec.time_budget_s)
    return store_sweeps.create(session, tenant_id, spec.to_dict(),
                               name=spec.name or "sweep", idempotency_key=key,
                               request_hash=body_hash, deadline_at=deadline)


def resource(session: Session, sweep: Sweep) -> dict[str, Any]:
    """The sweep as the API shows it (store.sweep_resources.sweep_json renders it, for the
    worker's webhook events too: worker.sweep_controller.resource)."""
    spec = SweepSpec.from_stored(sweep.spec)
    trials = store_sweeps.trials(session, sweep.id)
    jobs = store_sweeps.trial_jobs(session, sweep.id)
    return sweep_json(sweep, trials, jobs, spec.objective, spec.epochs)


def trial_items(session: Session, sweep: Sweep, order: str) -> list[dict[str, Any]]:
    """Every trial as the API shows it, by index or best first (unfinished last)."""
    metric, mode = SweepSpec.from_stored(sweep.spec).objective
    trials: Sequence[SweepTrial] = store_sweeps.trials(session, sweep.id)
    jobs: Mapping[str, Job] = store_sweeps.trial_jobs(session, sweep.id)
    items = [trial_json(t, jobs.get(t.job_id or ""), metric) for t in trials]
    if order == "best":
        sign = -1.0 if mode == "max" else 1.0
        items.sort(key=lambda i: (i["best"] is None or i["best"].get(metric) is None,
                                  sign * float((i["best"] or {}).get(metric) or 0.0),
                                  i["index"]))
    return items
