"""forks: a job started from another job's checkpoint

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 12:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('forks',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('parent_job_id', sa.String(length=40), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=40), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('optimizer_state', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_forks_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_forks'))
    )
    op.create_index(op.f('ix_forks_parent_job_id'), 'forks', ['parent_job_id'], unique=False)
    op.create_index(op.f('ix_forks_checkpoint_id'), 'forks', ['checkpoint_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_forks_checkpoint_id'), table_name='forks')
    op.drop_index(op.f('ix_forks_parent_job_id'), table_name='forks')
    op.drop_table('forks')
