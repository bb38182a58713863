"""batch predictions: a dataset scored by one checkpoint, and its result in chunks

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-04 12:48:00+00:00

A chunk's primary key (batch_id, chunk_index) is what makes a chunk impossible to write twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('batch_predictions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=40), nullable=False),
    sa.Column('dataset_id', sa.String(length=200), nullable=False),
    sa.Column('loss', sa.String(length=64), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_total', sa.BigInteger(), nullable=False),
    sa.Column('rows_done', sa.BigInteger(), nullable=False),
    sa.Column('chunk_rows', sa.Integer(), nullable=False),
    sa.Column('error_count', sa.BigInteger(), nullable=False),
    sa.Column('errors', JSON, nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_batch_predictions_checkpoint_id_checkpoints'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_batch_predictions_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_predictions'))
    )
    with op.batch_alter_table('batch_predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_predictions_checkpoint_id'), ['checkpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batch_predictions_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index('ix_batch_predictions_tenant_id_id', ['tenant_id', 'id'], unique=False)

    op.create_table('batch_chunks',
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('chunk_index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batch_predictions.id'], name=op.f('fk_batch_chunks_batch_id_batch_predictions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'chunk_index', name=op.f('pk_batch_chunks'))
    )


def downgrade() -> None:
    op.drop_table('batch_chunks')
    with op.batch_alter_table('batch_predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_predictions_tenant_id_id')
        batch_op.drop_index(batch_op.f('ix_batch_predictions_dataset_id'))
        batch_op.drop_index(batch_op.f('ix_batch_predictions_checkpoint_id'))

    op.drop_table('batch_predictions')
