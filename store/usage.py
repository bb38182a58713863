"""What a tenant uses, for quotas."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.models import Checkpoint, Dataset


def stored_bytes(s: Session, tenant_id: str) -> int:
    """Bytes the tenant stores, its storage quota's count: uploaded datasets plus every
    checkpoint row (periodic, best and final ones of its jobs, and imported weights, which
    carry the tenant without a job)."""
    datasets = sa.select(sa.func.coalesce(sa.func.sum(Dataset.size_bytes), 0)).where(
        Dataset.tenant_id == tenant_id
    )
    checkpoints = sa.select(sa.func.coalesce(sa.func.sum(Checkpoint.size_bytes), 0)).where(
        Checkpoint.tenant_id == tenant_id
    )
    return int(s.scalar(datasets) or 0) + int(s.scalar(checkpoints) or 0)
