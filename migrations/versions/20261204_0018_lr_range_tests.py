"""lr range tests: the jobs that are learning-rate range tests, with their results

Revision ID: 0018
Revises: 0011
Create Date: 2026-12-04 14:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('lr_range_tests',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('min_lr', sa.Float(), nullable=False),
    sa.Column('max_lr', sa.Float(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('result', JSON, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'],
                            name=op.f('fk_lr_range_tests_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_lr_range_tests'))
    )


def downgrade() -> None:
    op.drop_table('lr_range_tests')
