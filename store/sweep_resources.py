"""The sweep and trial resources of the API (docs/sweeps.md), from rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store.models import Job, Sweep, SweepTrial
from store.resources import isoformat

TRIAL_COUNTS = ("queued", "running", "succeeded", "pruned", "failed")


def trial_status(trial: SweepTrial, job: Job | None) -> str:
    """What the trial is doing: its recorded outcome, else its current job's status."""
    if trial.outcome is not None:
        return str(trial.outcome)
    if job is None:
        return "queued"
    if job.status == "succeeded" and job.stop_reason == "pruned":
        return "pruned"
    return str(job.status)


def trial_epochs(trial: SweepTrial, job: Job | None) -> int:
    return int(trial.epochs_run) if trial.outcome is not None or job is None \
        else int(job.epoch_done or 0)


def trial_json(trial: SweepTrial, job: Job | None, metric: str) -> dict[str, Any]:
    best = None
    if trial.value is not None:
        best = {metric: trial.value, "epoch": trial.best_epoch}
    elif job is not None and job.best and metric in job.best:
        best = {metric: job.best[metric], "epoch": job.best.get("epoch")}
    return {
        "index": int(trial.trial_index), "params": dict(trial.params), "job_id": trial.job_id,
        "status": trial_status(trial, job),
        "stop_reason": None if job is None else job.stop_reason,
        "attempts": int(trial.attempts), "epochs_run": trial_epochs(trial, job), "best": best,
    }


def best_trial(trials: Sequence[SweepTrial], mode: str) -> SweepTrial | None:
    """The finished trial with the best value; ties go to the lower index."""
    done = [t for t in trials if t.value is not None]
    if not done:
        return None
    sign = -1.0 if mode == "max" else 1.0
    return min(done, key=lambda t: (sign * float(t.value or 0.0), t.trial_index))


def sweep_json(sweep: Sweep, trials: Sequence[SweepTrial], jobs: Mapping[str, Job],
               objective: tuple[str, str], epochs: int) -> dict[str, Any]:
    metric, mode = objective
    counts = dict.fromkeys(TRIAL_COUNTS, 0)
    epochs_run = 0
    for t in trials:
        job = jobs.get(t.job_id or "")
        status = trial_status(t, job)
        if status in counts:
            counts[status] += 1
        epochs_run += trial_epochs(t, job)
    best = best_trial(trials, mode)
    return {
        "id": sweep.id, "name": sweep.name, "status": sweep.status,
        "stop_reason": sweep.stop_reason, "cancel_requested": bool(sweep.cancel_requested),
        "spec": sweep.spec,
        "trials": {"total": len(trials), **counts},
        "best": None if best is None else {
            "trial": int(best.trial_index), "job_id": best.job_id, "params": dict(best.params),
            "metric": metric, "value": best.value, "epoch": best.best_epoch},
        "epochs_run": epochs_run,
        "epochs_budget": int(sweep.spec["search"]["max_trials"]) * epochs,
        "created_at": isoformat(sweep.created_at), "started_at": isoformat(sweep.started_at),
        "finished_at": isoformat(sweep.finished_at),
    }
