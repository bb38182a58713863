"""per-layer diagnostics: one row per job and epoch; jobs.warnings

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 15:00:00+00:00

core.diagnostics computes the rows and the warning rule; the worker writes both at its epoch
commits (worker/epoch_buffer.py), the API reads them (GET /v1/jobs/{id}/diagnostics and the
job resource's `warnings`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('job_diagnostics',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('epoch', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('layers', JSON, nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_diagnostics_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'epoch', name=op.f('pk_job_diagnostics'))
    )
    # A plain nullable column: SQLite adds it in place, no table copy.
    op.add_column('jobs', sa.Column('warnings', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('warnings')
    op.drop_table('job_diagnostics')
