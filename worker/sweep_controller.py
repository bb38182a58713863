"""The sweep controller: what to start, retry, stop or finish, decided from rows only.

``step(s, sweep_id, ...)`` runs in one transaction with the sweep's row locked (store.sweeps
states the invariants): it records the end of each trial whose job has ended (retrying a
failed one up to ``max_retries``), starts trials up to ``max_concurrent`` and ``max_trials``,
stops the running ones once the sweep is cancelled or past its time budget, and finishes
the sweep when nothing runs and nothing more may start. It returns the new jobs' ids, which
the caller sends to the queue after the commit; a crash in between leaves them ``queued`` for
reconcile to re-send, like any job. The Celery task ``sweep_step`` calls it when a trial ends
and from every reconcile beat, so a lost message or a dead controller delays, never loses.

ASHA's rung decisions are not made here but in the trial's own epoch commit
(``report_rung``), from the same rows: the trial must not run on while a message travels,
or where it stopped would depend on timing, and the issue asks that a replay with
``max_concurrent: 1`` make the same decisions and the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Limits
from core.spec import Spec
from core.sweeps import RungResult, SweepSpec, continues, grid_points, random_point, rungs
from store import submissions, sweeps
from store import webhooks as store_webhooks
from store.columns import utcnow
from store.models import Job, Sweep, SweepRung, SweepTrial
from store.statuses import TERMINAL_STATUSES as TERMINAL
from store.statuses import status_event
from store.sweep_resources import best_trial, sweep_json
from worker.webhooks import sweep_event_type


def stored_spec(sweep: Sweep) -> SweepSpec:
    """The sweep's body as stored."""
    return SweepSpec.from_stored(sweep.spec)


def resource(s: Session, sweep: Sweep) -> dict[str, Any]:
    """The sweep as ``GET /v1/sweeps/{id}`` shows it (and as its webhook events carry it)."""
    spec = stored_spec(sweep)
    return sweep_json(sweep, sweeps.trials(s, sweep.id), sweeps.trial_jobs(s, sweep.id),
                      spec.objective, spec.epochs)


def trial_spec(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The job spec of a trial, every default filled (as POST /v1/jobs stores it)."""
    return Spec.from_dict(spec.space.apply(spec.base, params)).to_dict()


def target_trials(spec: SweepSpec) -> int:
    if spec.search.method == "grid":
        return len(grid_points(spec.space, spec.search.max_trials))
    return spec.search.max_trials


def next_point(s: Session, sweep_id: str, spec: SweepSpec, index: int,
               trials: list[SweepTrial]) -> dict[str, Any]:
    """Trial ``index``'s parameters: a pure function of the space, the seed, the index and,
    for TPE, the finished trials in the order they ended."""
    if spec.search.method == "grid":
        return grid_points(spec.space, index + 1)[index]
    if spec.search.method == "random":
        return random_point(spec.space, spec.search.seed, index)
    from worker.sweep_search import Observation, tpe_point

    rung_values: dict[int, dict[int, float]] = {}
    for row in sweeps.decisions(s, sweep_id):
        if row.value is not None:
            rung_values.setdefault(row.trial_index, {})[row.rung] = row.value
    ended = sorted((t for t in trials if t.outcome in ("succeeded", "pruned", "failed")),
                   key=lambda t: t.end_seq or 0)
    history = []
    for t in ended:
        # a trial that never produced the metric (diverged at once) is a failure to TPE
        state = "failed" if t.outcome == "failed" or t.value is None else \
            "complete" if t.outcome == "succeeded" else "pruned"
        history.append(Observation(dict(t.params), state,
                                   t.value if state == "complete" else None,
                                   rung_values.get(t.trial_index, {})))
    return tpe_point(spec.space, spec.search.seed, index, spec.objective[1], history)


def best_of(s: Session, job_id: str, metric: str, mode: str) -> tuple[float | None, int | None]:
    """The best finite value of ``metric`` over the job's epochs, and its epoch."""
    series = [(e, v) for e, v in sweeps.metric_series(s, job_id, metric) if v is not None]
    if not series:
        return None, None
    sign = -1.0 if mode == "max" else 1.0
    epoch, value = min(series, key=lambda ev: (sign * ev[1], ev[0]))
    return value, epoch


def _submit(s: Session, sweep: Sweep, spec: SweepSpec, job_spec: dict[str, Any], index: int,
            attempt: int, limits: Limits) -> str | None:
    """A trial's job through the production submit path (the tenant's quota applies); its
    id, or None when the quota is full (the trial waits for the next step)."""
    dataset = spec.base_spec.dataset
    dataset_id = None if dataset is None or dataset.startswith("builtin:") else dataset
    key = f"sweep:{sweep.id}:{index}:{attempt}"  # a duplicate step finds this job, not a new one
    made = submissions.submit(s, sweep.tenant_id, job_spec, dataset_id, key, None,
                             cap=limits.max_concurrent_jobs, first_event=status_event("queued"))
    if made.existing_id is not None:
        return str(made.existing_id)
    return None if made.job is None else str(made.job["id"])


@dataclass
class StepResult:
    """What the caller does after the commit: send ``dispatch``; cancel ``cancel`` (in its
    own transaction: a worker's epoch commit locks its job, then the sweep, and this step
    holds the sweep, so touching a job row here could deadlock)."""

    dispatch: list[str]
    cancel: list[tuple[str, str]]  # (tenant id, job id)
    finished: bool
    deliveries: list[str] = field(default_factory=list)  # webhook outbox rows to send


def step(s: Session, sweep_id: str, limits: Limits) -> StepResult:
    """One decision round for the sweep (see the module docstring)."""
    sweep = sweeps.lock(s, sweep_id)
    if sweep is None or sweep.status in TERMINAL:
        return StepResult([], [], False)
    spec = stored_spec(sweep)
    metric, mode = spec.objective
    trials = sweeps.trials(s, sweep_id)
    jobs = sweeps.trial_jobs(s, sweep_id)
    now = utcnow()
    over_time = sweep.deadline_at is not None and now >= sweep.deadline_at
    stopping = bool(sweep.cancel_requested) or over_time
    dispatch: list[str] = []
    events: list[tuple[str, dict[str, Any]]] = []
    before = best_trial(trials, mode)
    for trial in trials:
        job = jobs.get(trial.job_id or "")
        if trial.outcome is None and trial.job_id is None:  # its job was deleted (SET NULL)
            if sweeps.record_end(s, sweep_id, trial.trial_index, None, "cancelled", value=None,
                                 best_epoch=None, epochs_run=int(trial.epochs_run)):
                events.append(("trial_finished", {"trial": trial.trial_index, "job_id": None,
                                                  "outcome": "cancelled"}))
            continue
        if trial.outcome is not None or job is None or job.status not in TERMINAL:
            continue
        if job.status == "failed" and trial.attempts <= spec.max_retries and not stopping:
            new_job = _submit(s, sweep, spec, dict(job.spec), trial.trial_index,
                              trial.attempts + 1, limits)
            if new_job is not None and sweeps.retry_trial(s, sweep_id, trial.trial_index,
                                                          job.id, new_job):
                dispatch.append(new_job)
                events.append(("trial_retried", {"trial": trial.trial_index, "job_id": new_job,
                                                 "attempt": trial.attempts + 1}))
            continue
        outcome = _outcome(job)
        value, epoch = best_of(s, job.id, metric, mode) if outcome in ("succeeded", "pruned") \
            else (None, None)
        if sweeps.record_end(s, sweep_id, trial.trial_index, job.id, outcome, value=value,
                             best_epoch=epoch, epochs_run=int(job.epoch_done or 0)):
            events.append(("trial_finished", {"trial": trial.trial_index, "job_id": job.id,
                                              "outcome": outcome, metric: value,
                                              "epochs_run": int(job.epoch_done or 0)}))
    s.flush()
    trials = sweeps.trials(s, sweep_id)
    after = best_trial(trials, mode)
    new_best = after is not None and (before is None or after.trial_index != before.trial_index)
    if after is not None and new_best:
        events.append(("new_best", {"trial": after.trial_index, "job_id": after.job_id,
                                    "params": dict(after.params), metric: after.value,
                                    "epoch": after.best_epoch}))
    running = [t for t in trials if t.outcome is None]
    active = len(running)
    cancel = [(sweep.tenant_id, t.job_id) for t in running
              if stopping and t.job_id is not None]
    created = int(sweep.trials_created)  # as read under the lock; only this step moves it
    if not stopping:
        target = target_trials(spec)
        index = created
        while active < spec.search.max_concurrent and index < target:
            params = next_point(s, sweep_id, spec, index, trials)
            job_id = _submit(s, sweep, spec, trial_spec(spec, params), index, 1, limits)
            if job_id is None:
                break  # the tenant's job quota is full: the next step tries again
            if not sweeps.claim_index(s, sweep_id, index):
                raise RuntimeError(f"sweep {sweep_id}: trial {index} taken while locked")
            sweeps.add_trial(s, sweep_id, index, params, job_id)
            dispatch.append(job_id)
            events.append(("trial_started", {"trial": index, "job_id": job_id,
                                             "params": params}))
            index += 1
            active += 1
        created = index
    finished = False
    ended: str | None = None
    done_starting = stopping or created >= target_trials(spec)
    if not active and done_starting:
        status = "cancelled" if sweep.cancel_requested else "succeeded"
        reason = "cancelled" if sweep.cancel_requested else "time_budget" if over_time else None
        finished = sweeps.finish(s, sweep_id, status, reason)
        if finished:
            ended = status
            events.append(("sweep_finished", {"status": status, "stop_reason": reason}))
    sweeps.append_events(s, sweep_id, events)
    return StepResult(dispatch, cancel, finished,
                      _webhook_events(s, sweep, new_best=new_best, ended=ended))


def _webhook_events(s: Session, sweep: Sweep, *, new_best: bool,
                    ended: str | None) -> list[str]:
    """Outbox rows for the step's news (a new best; ``ended``: the status the step ended the
    sweep with), in its transaction: written with the change they report, as a job's final
    status writes its event. ``data`` is the sweep as the API shows it after the step."""
    kinds = ["sweep.new_best"] if new_best else []
    end_kind = None if ended is None else sweep_event_type(ended)
    kinds += [end_kind] if end_kind is not None else []
    made: list[dict[str, Any]] = []

    def data() -> dict[str, Any]:  # read once, and only if some webhook subscribes
        if not made:
            s.flush()
            s.refresh(sweep)  # the step's writes went past the session
            made.append(resource(s, sweep))
        return made[0]

    return [delivery for kind in kinds
            for delivery in store_webhooks.enqueue(s, sweep.tenant_id, kind, data)]


def _outcome(job: Job) -> str:
    if job.status == "succeeded":
        return "pruned" if job.stop_reason == "pruned" else "succeeded"
    return str(job.status)


# -- the trial's side: ASHA in the worker's epoch commit ---------------------------------

@dataclass(frozen=True)
class TrialPlan:
    """What a trial's runner needs to report rungs: read once, when the run starts."""

    sweep_id: str
    index: int
    rungs: tuple[int, ...]
    metric: str
    mode: str
    reduction_factor: int
    pruned_at: int | None  # a decision recorded before a crash: stop at once


def trial_plan(s: Session, job_id: str) -> TrialPlan | None:
    """The plan of the trial whose current job this is, or None (not a trial, or no ASHA)."""
    trial = sweeps.trial_of_job(s, job_id)
    if trial is None:
        return None
    sweep = s.get(Sweep, trial.sweep_id)
    job = s.get(Job, job_id)
    scheduler = None if sweep is None else sweep.spec.get("scheduler")
    if sweep is None or job is None or scheduler is None:
        return None
    epochs = int(job.spec["training"]["epochs"])  # the stored spec has every default filled
    return TrialPlan(sweep.id, int(trial.trial_index),
                     rungs(int(scheduler["grace_epochs"]), int(scheduler["reduction_factor"]),
                           epochs),
                     str(scheduler["metric"]), str(scheduler["mode"]),
                     int(scheduler["reduction_factor"]),
                     sweeps.pruned_at(s, sweep.id, int(trial.trial_index)))


def report_rung(s: Session, plan: TrialPlan, epoch: int, metrics: Mapping[str, float]) -> bool:
    """Record the trial's metric at rung ``epoch`` and decide; True if it goes on."""
    sweeps.lock(s, plan.sweep_id)
    value = float(metrics.get(plan.metric, math.nan))

    def decide(rows: list[SweepRung], new: SweepRung) -> bool:
        table = [_result(r) for r in rows]
        return continues(table, _result(new), plan.mode, plan.reduction_factor)

    goes_on, new = sweeps.record_rung(s, plan.sweep_id, plan.index, epoch, value, decide)
    if new:
        sweeps.append_events(s, plan.sweep_id, [
            ("rung_reported", {"trial": plan.index, "rung": epoch, plan.metric: value,
                               "continues": goes_on})]
            + ([] if goes_on else [("trial_pruned", {"trial": plan.index, "rung": epoch})]))
    return goes_on


def _result(row: SweepRung) -> RungResult:
    return RungResult(int(row.seq), int(row.trial_index), int(row.rung),
                      math.nan if row.value is None else float(row.value))


def deadline(spec: SweepSpec) -> Any:
    """When the sweep's time budget ends (None: no budget)."""
    if spec.time_budget_s is None:
        return None
    return utcnow() + timedelta(seconds=spec.time_budget_s)
