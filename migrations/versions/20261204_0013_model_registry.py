"""model registry: named models, their immutable versions, and aliases with their history

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 12:20:00+00:00

A version's checkpoint is referenced ON DELETE RESTRICT: the database itself refuses to
delete the weights a model version serves.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
OPEN = "moved_at IS NULL"  # copied, not imported: a revision never changes


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_registered_models_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registered_models')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_registered_models_tenant_id_name'))
    )
    op.create_table('model_versions',
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.String(length=40), nullable=False),
    sa.Column('checkpoint_sha256', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('dataset_id', sa.String(length=40), nullable=True),
    sa.Column('dataset_sha256', sa.String(length=64), nullable=True),
    sa.Column('metrics', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_model_versions_checkpoint_id_checkpoints'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], name=op.f('fk_model_versions_model_id_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'version', name=op.f('pk_model_versions'))
    )
    op.create_index(op.f('ix_model_versions_checkpoint_id'), 'model_versions', ['checkpoint_id'], unique=False)
    op.create_index(op.f('ix_model_versions_job_id'), 'model_versions', ['job_id'], unique=False)
    op.create_index(op.f('ix_model_versions_dataset_id'), 'model_versions', ['dataset_id'], unique=False)
    op.create_table('model_aliases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.String(length=40), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('moved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['registered_models.id'], name=op.f('fk_model_aliases_model_id_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_aliases'))
    )
    op.create_index('ix_model_aliases_current', 'model_aliases', ['model_id', 'alias'], unique=True,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index('ix_model_aliases_current', table_name='model_aliases')
    op.drop_table('model_aliases')
    op.drop_index(op.f('ix_model_versions_dataset_id'), table_name='model_versions')
    op.drop_index(op.f('ix_model_versions_job_id'), table_name='model_versions')
    op.drop_index(op.f('ix_model_versions_checkpoint_id'), table_name='model_versions')
    op.drop_table('model_versions')
    op.drop_table('registered_models')
