"""The worker's reads and writes, on top of store/'s query functions.

Every function takes the session first and never commits: the runner decides where each
transaction starts and ends (the caller owns the session), so an epoch's metrics, progress,
event and checkpoints land together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from config.settings import Settings
from core.checkpoint_policy import kept
from core.diagnostics import STREAK
from core.diagnostics import warnings as diagnostic_warnings
from core.errors import CheckpointError, DatasetError, SpecError
from core.lr_range_test import RangeTest, RangeTestSpec
from core.spec import CheckpointPolicy
from store import (
    checkpoints,
    claims,
    datasets,
    diagnostics,
    events,
    leases,
    lineage,
    lr_range_tests,
    metrics,
    reproductions,
)
from store.errors import NotFound
from store.models import Job
from store.statuses import status_event
from worker import environment, webhooks

# Errors no retry can fix: the job fails at once with the message.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (SpecError, DatasetError, CheckpointError)


@dataclass(frozen=True)
class Claimed:
    """What the runner needs from the claimed job row, detached from the session."""

    attempts: int
    tenant_id: str
    spec: dict[str, Any]
    dataset_id: str | None
    last_error: str | None


def claim(s: Session, job_id: str, worker_id: str, settings: Settings) -> Claimed | None:
    # Claiming a job that is still "running" takes it over from a worker that went silent.
    was_running = s.scalar(sa.select(Job.status).where(Job.id == job_id)) == "running"
    job = claims.claim_job(s, job_id, worker_id, settings.lease_timeout_s)
    if job is None:
        return None
    events.append(s, job_id, *status_event("running", attempt=int(job.attempts)))
    leases.record_environment(s, job_id, worker_id, environment.describe())
    if was_running:
        webhooks.enqueue_job_event(s, job, "job.stalled")
    return Claimed(int(job.attempts), job.tenant_id, dict(job.spec), job.dataset_id,
                   job.failure_reason)


def beat(s: Session, job_id: str, worker_id: str) -> str | None:
    """Write the heartbeat; None to go on, else "cancelled" or "lease_lost"."""
    result = claims.heartbeat(s, job_id, worker_id)
    if not result.lease_held:
        return "lease_lost"
    return "cancelled" if result.cancel_requested else None


JOBS = cast(sa.Table, Job.__table__)
# Prebuilt and Core: the runner polls several times a second between batches.
_POLL = sa.select(JOBS.c.lease_owner, JOBS.c.status, JOBS.c.cancel_requested).where(
    JOBS.c.id == sa.bindparam("job_id"))


def poll(s: Session | sa.Connection, job_id: str, worker_id: str) -> str | None:
    """Read-only check of the cancel flag and the lease owner (a session or a connection)."""
    row = s.execute(_POLL, {"job_id": job_id}).first()
    if row is None or row.lease_owner != worker_id or row.status != "running":
        return "lease_lost"
    return "cancelled" if row.cancel_requested else None


def load_dataset(s: Session, claimed: Claimed, settings: Settings) -> tuple[Any, Any]:
    """The job's (X, y): a builtin by name, or an uploaded dataset's stored arrays."""
    from core.datasets import load_builtin

    name = str(claimed.spec.get("dataset") or "")
    if name.startswith("builtin:") and claimed.dataset_id is None:
        data = load_builtin(name.removeprefix("builtin:"))
        return data.X, data.y
    dataset_id = claimed.dataset_id or name
    row = datasets.get(s, claimed.tenant_id, dataset_id)
    if row is None:
        raise DatasetError(f"dataset {dataset_id!r} does not exist any more")
    if row.builtin:
        data = load_builtin(str(row.name).removeprefix("builtin:"))
        return data.X, data.y
    arrays = dataset_arrays(s, claimed.tenant_id, dataset_id)
    if arrays is None:
        raise DatasetError(f"dataset {dataset_id!r} has no stored arrays")
    return arrays


def dataset_arrays(s: Session, tenant_id: str, dataset_id: str) -> tuple[Any, Any] | None:
    """An uploaded dataset's (X, y) as stored (its own dtypes), or None if it stores none.

    The stored parts are copied straight into the one allocation the arrays are views of
    (core.datasets.stored.load): no bytes object of the whole, no second copy.
    """
    from core.datasets import stored

    return stored.load(partial(datasets.read_into, s, tenant_id, dataset_id))


def range_test(s: Session, job_id: str) -> RangeTest | None:
    """The per-batch hook of a learning-rate range test job (None for any other job)."""
    row = lr_range_tests.get(s, job_id)
    if row is None:
        return None
    return RangeTest(RangeTestSpec(float(row.min_lr), float(row.max_lr), int(row.steps)))


def record_range_test(s: Session, job_id: str, test: RangeTest) -> None:
    lr_range_tests.record_result(s, job_id, test.result())


def latest_checkpoint_blob(s: Session, job_id: str) -> bytes | None:
    latest = checkpoints.latest_for_job(s, job_id)
    return None if latest is None else checkpoints.get_blob(s, latest.id)


def init_params(s: Session, claimed: Claimed) -> dict[str, Any] | None:
    """The weights of the spec's ``init_checkpoint`` (warm start), or None without one."""
    from core.checkpoint import load_checkpoint

    checkpoint_id = claimed.spec.get("init_checkpoint")
    if not checkpoint_id:
        return None
    row = checkpoints.get(s, str(checkpoint_id), tenant_id=claimed.tenant_id)
    blob = None if row is None else checkpoints.get_blob(s, row.id)
    if blob is None:
        raise CheckpointError(f"init_checkpoint {checkpoint_id!r} does not exist")
    return dict(load_checkpoint(bytes(blob)).params)


def fork_start(s: Session, job_id: str) -> tuple[bytes | None, dict[str, Any] | None]:
    """How a fork's first run starts: (the parent checkpoint to resume, None) with its
    optimizer state kept, (None, its weights and buffers) with it reset; (None, None) for a
    job that is not a fork."""
    from core.checkpoint import load_checkpoint

    fork = lineage.fork_of(s, job_id)
    if fork is None:
        return None, None
    blob = checkpoints.get_blob(s, fork.checkpoint_id)
    if blob is None:
        raise CheckpointError(f"the parent checkpoint {fork.checkpoint_id!r} is gone")
    if fork.optimizer_state == "keep":
        return bytes(blob), None
    network = load_checkpoint(bytes(blob))
    return None, {**network.params, **network.buffers}


def record_epochs(s: Session, job_id: str, entries: list[tuple[int, int, dict[str, float]]],
                  *, times: list[datetime] | None = None) -> None:
    """Metrics rows and "epoch" events of several epochs (entries: (epoch, epochs, values)),
    each event stamped with its entry of `times` (when that epoch ended) if given.

    The store's bulk forms, three statements in all, because one call per epoch costs more
    than a small model's epoch (see worker/epoch_buffer.py).
    """
    if not entries:
        return
    metrics.upsert_epochs(s, job_id, [(epoch, values) for epoch, _, values in entries])
    events.append_many(s, job_id, [
        ("epoch", {"epoch": epoch, "epochs": epochs, **values})
        for epoch, epochs, values in entries
    ], times=times)


def record_diagnostics(s: Session, job_id: str,
                       entries: list[tuple[int, list[dict[str, Any]]]]) -> None:
    """Per-layer diagnostics of several epochs (oldest first), and the warnings they raise.

    core.diagnostics' rule spans epochs (an update ratio out of range for STREAK in a row):
    the epochs stored just before these, read back, continue a streak across commits and
    across a resumed run. Two reads and one write a commit; nothing when switched off.
    """
    if not entries:
        return
    earlier = diagnostics.series(s, job_id, before_epoch=entries[0][0], limit=STREAK - 1,
                                 newest=True)
    raised = diagnostics.warnings(s, job_id)
    found = diagnostic_warnings([*earlier, *entries], raised)
    diagnostics.record(s, job_id, entries)
    if len(found) != len(raised):
        diagnostics.set_warnings(s, job_id, found)


def update_progress(s: Session, job_id: str, epoch: int, latest: dict[str, float],
                    best: dict[str, Any] | None) -> None:
    claims.update_progress(s, job_id, epoch, latest, best)


def save_checkpoint(s: Session, job_id: str, epoch: int, kind: str, blob: bytes,
                    values: dict[str, float]) -> None:
    """Store one checkpoint; call apply_policy after the last one of a transaction."""
    checkpoints.save_checkpoint(s, job_id, epoch, kind, blob, values)


def save_checkpoints(s: Session, job_id: str,
                     items: list[tuple[int, str, bytes, dict[str, float]]], *,
                     tenant_id: str | None = None,
                     model_spec: dict[str, Any] | None = None) -> None:
    """Store a commit's checkpoints, items ``(epoch, kind, blob, metrics)``, in one flush.

    Given the tenant and model spec (the claim's), no job lookup; without a tenant they are
    read from the job once. Call apply_policy after the last checkpoint of a transaction.
    """
    if not items:
        return
    if tenant_id is None:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        tenant_id, model_spec = job.tenant_id, (job.spec or {}).get("model")
    checkpoints.save_many(s, job_id, tenant_id, model_spec,
                          [(epoch, kind, blob, dict(values)) for epoch, kind, blob, values
                           in items])


def stored_bytes(s: Session, job_id: str, tenant_id: str | None = None) -> int:
    """The bytes the job's tenant stores (datasets, checkpoints, imports): its quota's count."""
    from store import usage

    if tenant_id is None:
        tenant_id = s.scalar(sa.select(Job.tenant_id).where(Job.id == job_id))
    return usage.stored_bytes(s, str(tenant_id))


def apply_policy(s: Session, job_id: str, policy: CheckpointPolicy) -> list[str]:
    """Delete the job's checkpoints the policy does not keep (core.checkpoint_policy.kept);
    the deleted ids."""
    rows = checkpoints.policy_rows(s, job_id)
    keep = {row.id for row in kept(policy, rows)}
    doomed = [row.id for row in rows if row.id not in keep]
    checkpoints.delete_many(s, doomed)
    return doomed


def finish(s: Session, job_id: str, worker_id: str, status: str, stop_reason: str | None,
           failure: str | None) -> bool:
    """End the run with `status`; False (and nothing written) when the lease was lost."""
    if not claims.finish(s, job_id, worker_id, status, stop_reason=stop_reason,
                       failure_reason=failure):
        return False
    events.append(s, job_id, *status_event(status, stop_reason=stop_reason,
                                           failure_reason=failure))
    if reproductions.of(s, job_id) is not None:
        judge_reproduction(s, job_id)
    event = webhooks.job_event_type(status, stop_reason)
    if event is not None:
        webhooks.enqueue_job_event(s, s.get(Job, job_id, populate_existing=True), event)
    return True


def release_for_retry(s: Session, job_id: str, worker_id: str, error: str) -> int | None:
    """Give the job back to the queue after an unexpected error; its attempts, or None."""
    attempts = s.scalar(sa.select(Job.attempts).where(Job.id == job_id))
    if attempts is None or not claims.release(s, job_id, worker_id, failure_reason=error):
        return None
    events.append(s, job_id, *status_event("queued", retry_after=error))
    return int(attempts)


def stranded(s: Session, settings: Settings) -> list[str]:
    return list(claims.stale_or_lost(s, queued_grace_s=settings.queued_grace_s,
                                   lease_timeout_s=settings.lease_timeout_s))


def judge_reproduction(s: Session, job_id: str) -> dict[str, Any]:
    """Compare a reproduction that just ended with its original, epoch by epoch, and keep
    the verdict (core.reproducibility: metrics of every epoch, weights of shared checkpoints)."""
    from core.reproducibility import compare_runs, weights_sha256

    row = reproductions.of(s, job_id)
    assert row is not None

    def weights(run: str) -> dict[tuple[int, str], str]:
        out = {}
        for c in checkpoints.list_for_job(s, run):
            blob = checkpoints.get_blob(s, c.id)
            if blob is not None:
                out[(int(c.epoch), str(c.kind))] = weights_sha256(bytes(blob))
        return out

    limit = 1_000_000  # every epoch: a job has far fewer
    verdict = compare_runs(metrics.history(s, row.of_job_id, limit=limit),
                           metrics.history(s, job_id, limit=limit),
                           weights(row.of_job_id), weights(job_id))
    reproductions.record_verdict(s, job_id, verdict)
    return verdict
