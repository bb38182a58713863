"""indexes of each tenant's datasets by name and by content hash

Revision ID: 0008
Revises: 0014
Create Date: 2026-12-04 12:00:00+00:00

A job spec may name an uploaded dataset by its name (the newest of the tenant's datasets
with it wins), and an upload whose bytes a dataset of the tenant already holds returns that
dataset instead of storing a copy. Both look a tenant's datasets up on every submission or
upload; without these indexes each lookup read every dataset the tenant ever uploaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_datasets_tenant_name', 'datasets', ['tenant_id', 'name', 'created_at'],
                    unique=False)
    op.create_index('ix_datasets_tenant_sha256', 'datasets', ['tenant_id', 'sha256'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_datasets_tenant_sha256', table_name='datasets')
    op.drop_index('ix_datasets_tenant_name', table_name='datasets')
