"""What a tenant uses, for quotas."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.models import Checkpoint, Dataset, Upload


def stored_bytes(s: Session, tenant_id: str) -> int:
    """Bytes the tenant stores, its storage quota's count: uploaded datasets, every
    checkpoint row (periodic, best and final ones of its jobs, and imported weights, which
    carry the tenant without a job), and the declared size of each unexpired upload still
    arriving in pieces (what it will take, counted from its start so none can outgrow the
    quota)."""
    datasets = sa.select(sa.func.coalesce(sa.func.sum(Dataset.size_bytes), 0)).where(
        Dataset.tenant_id == tenant_id
    )
    checkpoints = sa.select(sa.func.coalesce(sa.func.sum(Checkpoint.size_bytes), 0)).where(
        Checkpoint.tenant_id == tenant_id
    )
    uploads = sa.select(sa.func.coalesce(sa.func.sum(Upload.total_bytes), 0)).where(
        Upload.tenant_id == tenant_id, Upload.expires_at > utcnow()
    )
    return sum(int(s.scalar(query) or 0) for query in (datasets, checkpoints, uploads))
