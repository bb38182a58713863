"""Checkpoints: a training state's metadata and the metrics it was saved at; its bytes are
stored in parts beside it (store.checkpoint_parts) and read only by `get_blob`."""

from __future__ import annotations

import hashlib
import math
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import checkpoint_parts
from store.columns import utcnow
from store.errors import NotFound
from store.ids import PREFIXES, new_id
from store.models import CHECKPOINT_KINDS, Checkpoint, Job

DEFAULT_MONITOR = "val_loss"
CHECKPOINTS = cast(sa.Table, Checkpoint.__table__)
Scored = TypeVar("Scored")  # a Checkpoint, or a policy_rows row: anything with id/epoch/metrics


def _mode_for(monitor: str) -> str:
    """"max" for accuracies, "min" for losses and anything else, as Keras' "auto" mode does."""
    return "max" if "acc" in monitor else "min"


def _row(job_id: str | None, tenant_id: str, epoch: int, kind: str, blob: bytes,
         metrics: dict[str, Any] | None, sha256: str | None,
         model_spec: dict[str, Any] | None) -> Checkpoint:
    if kind not in CHECKPOINT_KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {CHECKPOINT_KINDS}")
    return Checkpoint(
        job_id=job_id, tenant_id=tenant_id, epoch=int(epoch), kind=kind,
        metrics=dict(metrics or {}), size_bytes=len(blob),
        sha256=sha256 or hashlib.sha256(blob).hexdigest(), model_spec=model_spec,
    )


def save_checkpoint(
    s: Session,
    job_id: str,
    epoch: int,
    kind: str,
    blob: bytes,
    metrics: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    sha256: str | None = None,
    model_spec: dict[str, Any] | None = None,
) -> Checkpoint:
    """Store a job's checkpoint; tenant, sha256 and model spec default from the job and blob."""
    if kind not in CHECKPOINT_KINDS:  # before the lookup: a bad kind is the caller's bug
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {CHECKPOINT_KINDS}")
    job = s.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    row = _row(job_id, tenant_id or job.tenant_id, epoch, kind, blob, metrics, sha256,
               model_spec if model_spec is not None else (job.spec or {}).get("model"))
    s.add(row)
    s.flush()
    checkpoint_parts.write(s, [(row.id, blob)])
    return row


def save_many(
    s: Session,
    job_id: str,
    tenant_id: str,
    model_spec: dict[str, Any] | None,
    items: list[tuple[int, str, bytes, dict[str, Any] | None]],
) -> list[Checkpoint]:
    """Store several checkpoints of one job, items ``(epoch, kind, blob, metrics)``, in one
    INSERT (and their bytes in one COPY); returns them as transient objects (values, not
    session members).

    The caller vouches for the job, tenant and model spec (the worker holds them from its
    claim): no job lookup. A Core INSERT, not the unit of work: the worker's commit thread
    runs this every second beside training, and the flush machinery cost more Python than
    the statement (issue 3's worker throughput).
    """
    now = utcnow()
    rows = [_row(job_id, tenant_id, epoch, kind, blob, metrics, None, model_spec)
            for epoch, kind, blob, metrics in items]
    for row in rows:  # what the column defaults would have filled in
        row.id, row.created_at = new_id(PREFIXES["checkpoint"]), now
    if rows:
        s.execute(sa.insert(CHECKPOINTS),
                  [{column.key: getattr(row, column.key) for column in CHECKPOINTS.c}
                   for row in rows])
        checkpoint_parts.write(s, [(row.id, blob) for row, (_, _, blob, _)
                                   in zip(rows, items, strict=True)])
    return rows


def policy_rows(s: Session, job_id: str) -> list[sa.Row[Any]]:
    """The job's checkpoints as (id, epoch, kind, metrics) rows: what a keep policy weighs.

    Core rows rather than ORM objects: the worker weighs its policy at every commit."""
    return list(s.execute(
        sa.select(CHECKPOINTS.c.id, CHECKPOINTS.c.epoch, CHECKPOINTS.c.kind,
                  CHECKPOINTS.c.metrics).where(CHECKPOINTS.c.job_id == job_id)
    ))


def delete_many(s: Session, checkpoint_ids: list[str]) -> None:
    """Delete these checkpoints (ids from `policy_rows`; none loaded in the session), except
    those a model version serves or a fork starts from: they outlive the job's retention
    policy."""
    from store.models import Fork, ModelVersion

    if checkpoint_ids:
        held = sa.union(sa.select(ModelVersion.checkpoint_id), sa.select(Fork.checkpoint_id))
        s.execute(sa.delete(CHECKPOINTS).where(CHECKPOINTS.c.id.in_(checkpoint_ids),
                                               CHECKPOINTS.c.id.not_in(held)))


def save(
    s: Session,
    job_id: str,
    tenant_id: str,
    epoch: int,
    kind: str,
    blob: bytes,
    sha256: str,
    metrics: dict[str, Any] | None,
    model_spec: dict[str, Any] | None,
) -> Checkpoint:
    """`save_checkpoint` with every field given (the issue's spelling)."""
    return save_checkpoint(s, job_id, epoch, kind, blob, metrics, tenant_id=tenant_id,
                           sha256=sha256, model_spec=model_spec)


def import_checkpoint(
    s: Session,
    tenant_id: str,
    *,
    blob: bytes,
    sha256: str | None = None,
    model_spec: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Checkpoint:
    """Store uploaded weights (no job) to warm-start jobs or to predict with."""
    row = _row(None, tenant_id, 0, "imported", blob, metrics, sha256, model_spec)
    s.add(row)
    s.flush()
    checkpoint_parts.write(s, [(row.id, blob)])
    return row


def get(s: Session, checkpoint_id: str, *, tenant_id: str | None = None) -> Checkpoint | None:
    """The checkpoint; with `tenant_id`, only if it is that tenant's (else None).

    The tenant is part of the query, so another tenant's id costs what a missing one does.
    """
    if tenant_id is None:
        return s.get(Checkpoint, checkpoint_id)
    return s.scalars(sa.select(Checkpoint).where(
        Checkpoint.id == checkpoint_id, Checkpoint.tenant_id == tenant_id)).one_or_none()


def get_checkpoint(s: Session, tenant_id: str, checkpoint_id: str) -> Checkpoint | None:
    """The tenant's checkpoint or None: the service's tenant-scoped read."""
    return get(s, checkpoint_id, tenant_id=tenant_id)


def get_blob(s: Session, checkpoint_id: str) -> bytes | None:
    """The checkpoint's bytes, or None if there is no such checkpoint."""
    return checkpoint_parts.read(s, checkpoint_id)


def list_for_job(s: Session, job_id: str) -> list[Checkpoint]:
    """The job's kept checkpoints by epoch, without their bytes."""
    return list(
        s.scalars(
            sa.select(Checkpoint)
            .where(Checkpoint.job_id == job_id)
            .order_by(Checkpoint.epoch, Checkpoint.id)
        )
    )


def latest_for_job(s: Session, job_id: str) -> Checkpoint | None:
    """The checkpoint with the highest epoch (the newest of them): where a resume starts."""
    query = (
        sa.select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.epoch.desc(), Checkpoint.id.desc())
        .limit(1)
    )
    return s.scalars(query).first()


def _score(row: Any, monitor: str) -> float | None:
    value = (row.metrics or {}).get(monitor)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def rank_best(rows: list[Scored], monitor: str, mode: str | None = None) -> list[Scored]:
    """Rows that carry `monitor`, best first (ties: the earlier epoch wins, as is_best does)."""
    mode = mode or _mode_for(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    sign = 1.0 if mode == "min" else -1.0
    scored = [(score, row) for row in rows if (score := _score(row, monitor)) is not None]
    scored.sort(key=lambda pair: (sign * pair[0], pair[1].epoch, pair[1].id))
    return [row for _, row in scored]


def _monitor_of(s: Session, job_id: str) -> str:
    job = s.get(Job, job_id)
    policy = ((job.spec if job is not None else None) or {}).get("checkpoints") or {}
    return str(policy.get("monitor") or DEFAULT_MONITOR)


def best_for_job(s: Session, job_id: str, monitor: str | None = None,
                 mode: str | None = None) -> Checkpoint | None:
    """The best checkpoint by `monitor` (default: the job's policy), else the latest."""
    rows = list_for_job(s, job_id)
    ranked = rank_best(rows, monitor or _monitor_of(s, job_id), mode)
    if ranked:
        return ranked[0]
    return latest_for_job(s, job_id)


def pick_for_job(s: Session, job_id: str, which: str) -> Checkpoint | None:
    """`which` is "best" or "latest" (the predict endpoint's choice)."""
    if which == "best":
        return best_for_job(s, job_id)
    if which == "latest":
        return latest_for_job(s, job_id)
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")


def prune(
    s: Session,
    job_id: str,
    keep_last: int,
    keep_best: int,
    monitor: str = DEFAULT_MONITOR,
    mode: str | None = None,
) -> list[str]:
    """Delete the job's checkpoints the policy does not keep; returns the deleted ids.

    Kept: every "final" one, the `keep_last` newest (always at least the latest), and the
    `keep_best` best by `monitor` (`mode` "min"/"max", default from the metric's name).
    """
    rows = list_for_job(s, job_id)
    if not rows:
        return []
    newest = sorted(rows, key=lambda r: (r.epoch, r.id), reverse=True)
    keep = {r.id for r in newest[: max(1, keep_last)]}
    keep |= {r.id for r in rank_best(rows, monitor, mode)[: max(0, keep_best)]}
    keep |= {r.id for r in rows if r.kind == "final"}
    doomed = [r.id for r in rows if r.id not in keep]
    if doomed:
        s.execute(
            sa.delete(Checkpoint).where(Checkpoint.id.in_(doomed))
            .execution_options(synchronize_session="fetch")
        )
    return doomed
