"""Uploaded datasets, tenant-scoped: another tenant's id reads as missing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, undefer

from store.models import Dataset
from store.pages import Page, newest_first


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
    row = s.get(Dataset, dataset_id)
    return row if row is not None and row.tenant_id == tenant_id else None


def get_blob(s: Session, tenant_id: str, dataset_id: str) -> bytes | None:
    """The npz bytes of the tenant's dataset, or None (missing, another tenant's, or builtin)."""
    row = s.scalars(
        sa.select(Dataset)
        .where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        .options(undefer(Dataset.blob))
    ).one_or_none()
    return None if row is None or row.blob is None else bytes(row.blob)


def list_page(s: Session, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page:
    """The tenant's datasets, newest first, without their blobs."""
    query = sa.select(Dataset).where(Dataset.tenant_id == tenant_id)
    return newest_first(s, query, Dataset.created_at, Dataset.id, limit, cursor)


def delete(s: Session, tenant_id: str, dataset_id: str) -> bool:
    """Delete the tenant's dataset; jobs that used it keep their results (dataset_id -> NULL)."""
    result = s.execute(
        sa.delete(Dataset)
        .where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Names the service uses.
create_dataset = create
get_dataset = get
list_datasets = list_page
delete_dataset = delete
