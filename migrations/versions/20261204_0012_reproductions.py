"""reproducibility: each claim's environment, and reproductions with their verdict

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-04 12:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('job_leases') as batch:
        batch.add_column(sa.Column('environment', JSON, nullable=True))
    op.create_table('reproductions',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('of_job_id', sa.String(length=40), nullable=False),
    sa.Column('identical', sa.Boolean(), nullable=True),
    sa.Column('first_divergent_epoch', sa.Integer(), nullable=True),
    sa.Column('epochs_compared', sa.Integer(), nullable=True),
    sa.Column('checkpoints_compared', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_reproductions_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['of_job_id'], ['jobs.id'], name=op.f('fk_reproductions_of_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_reproductions'))
    )
    op.create_index(op.f('ix_reproductions_of_job_id'), 'reproductions', ['of_job_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_reproductions_of_job_id'), table_name='reproductions')
    op.drop_table('reproductions')
    with op.batch_alter_table('job_leases') as batch:
        batch.drop_column('environment')
