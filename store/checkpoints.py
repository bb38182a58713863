"""Checkpoints: a training state's metadata and the metrics it was saved at; its bytes are
stored in parts beside it (store.checkpoint_parts) and read only by `get_blob`."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import checkpoint_parts
from store.columns import utcnow
from store.errors import NotFound
from store.ids import PREFIXES, new_id
from store.models import CHECKPOINT_KINDS, Checkpoint, Job

CHECKPOINTS = cast(sa.Table, Checkpoint.__table__)


class PolicyRow(NamedTuple):
    """What a keep policy weighs of a stored checkpoint (core/checkpoint_policy.py)."""

    id: str
    epoch: int
    kind: str
    metrics: dict[str, Any] | None


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


def policy_rows(s: Session, job_id: str) -> list[PolicyRow]:
    """The job's checkpoints, oldest first (ids are time-ordered): what a keep policy weighs.

    Core rows rather than ORM objects: the worker weighs its policy at every commit."""
    return [PolicyRow(*row) for row in s.execute(
        sa.select(CHECKPOINTS.c.id, CHECKPOINTS.c.epoch, CHECKPOINTS.c.kind,
                  CHECKPOINTS.c.metrics).where(CHECKPOINTS.c.job_id == job_id)
        .order_by(CHECKPOINTS.c.id)
    )]


def delete_many(s: Session, checkpoint_ids: list[str]) -> None:
    """Delete these checkpoints (ids from `policy_rows`, the ones the job's policy drops;
    none loaded in the session), except those a model version serves or a fork starts from:
    they outlive the job's retention policy."""
    from store.models import Fork, ModelVersion

    if checkpoint_ids:
        held = sa.union(sa.select(ModelVersion.checkpoint_id), sa.select(Fork.checkpoint_id))
        s.execute(sa.delete(CHECKPOINTS).where(CHECKPOINTS.c.id.in_(checkpoint_ids),
                                               CHECKPOINTS.c.id.not_in(held)))


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
