"""Uploaded datasets, tenant-scoped: another tenant's id reads as missing."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import registry
from store.db import read_bytea
from store.errors import Conflict
from store.models import Dataset, Job
from store.pages import Page, newest_first
from store.statuses import ACTIVE_STATUSES

DATASETS = cast(sa.Table, Dataset.__table__)


def create(
    s: Session,
    tenant_id: str,
    *,
    name: str,
    format: str,
    n_rows: int,
    x_shape: list[int],
    y_shape: list[int],
    kind: str,
    classes: list[Any] | None,
    sha256: str,
    size_bytes: int,
    blob: bytes | None,
    builtin: bool = False,
) -> Dataset:
    """Store a parsed dataset (`blob` is an npz of X and y) and return the flushed row."""
    row = Dataset(
        tenant_id=tenant_id, name=name, format=format, n_rows=n_rows, x_shape=list(x_shape),
        y_shape=list(y_shape), kind=kind, classes=classes, sha256=sha256,
        size_bytes=size_bytes, blob=blob, builtin=builtin,
    )
    s.add(row)
    s.flush()
    return row


def get(s: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    """The tenant's dataset or None; the tenant is in the query (see jobs.get)."""
    return s.scalars(
        sa.select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    ).one_or_none()


def newest_named(s: Session, tenant_id: str, name: str) -> Dataset | None:
    """The tenant's newest dataset called `name` (names need not be unique: an upload under
    a name already taken makes the name mean the new data), or None."""
    query = (sa.select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.name == name)
             .order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(1))
    return s.scalars(query).first()


def with_sha256(s: Session, tenant_id: str, sha256: str) -> list[Dataset]:
    """The tenant's datasets uploaded as bytes with this sha256, oldest first."""
    query = (sa.select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256)
             .order_by(Dataset.created_at, Dataset.id))
    return list(s.scalars(query))


def get_blob(s: Session, tenant_id: str, dataset_id: str) -> bytes | None:
    """The npz bytes of the tenant's dataset, or None (missing, another tenant's, or builtin).

    Read in PostgreSQL's binary format (`store.db.read_bytea`): through the ORM a 188 MB
    upload came back hex-encoded, twice its size, and took 1.5-2.0 s to read; a job on it
    paid that at every start.
    """
    if get(s, tenant_id, dataset_id) is None:
        return None
    return read_bytea(s, DATASETS, "blob", "id", dataset_id)


def list_page(s: Session, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page:
    """The tenant's datasets, newest first, without their blobs."""
    query = sa.select(Dataset).where(Dataset.tenant_id == tenant_id)
    return newest_first(s, query, Dataset.created_at, Dataset.id, limit, cursor)


def delete(s: Session, tenant_id: str, dataset_id: str) -> bool:
    """Delete the tenant's dataset; False if there is none. Jobs that used it keep their
    results (dataset_id -> NULL). Conflict while a queued or running job uses it (it would
    fail when a worker goes to load the data) or while a model version records it."""
    busy = s.scalar(
        sa.select(sa.func.count()).select_from(Job).where(
            Job.dataset_id == dataset_id, Job.tenant_id == tenant_id,
            Job.status.in_(ACTIVE_STATUSES))
    )
    if busy:
        raise Conflict(f"dataset {dataset_id} is used by {busy} queued or running job(s);"
                       " cancel them or wait")
    held = registry.versions_holding(s, dataset_id=dataset_id)
    if held:  # a registered version records which data made it
        raise Conflict(f"dataset {dataset_id} trained the model version(s) {', '.join(held)}")
    result = s.execute(
        sa.delete(Dataset)
        .where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
