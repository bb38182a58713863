"""sweeps: the sweep, its trials, ASHA's rung table, its events; jobs.sweep_id

Revision ID: 0011
Revises: 0015
Create Date: 2026-12-04 13:00:00+00:00

A trial is an ordinary job with `sweep_id` set; the sweep's decisions are rows here
(store/sweeps.py), so a controller that dies loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
ACTIVE = "status IN ('queued', 'running')"  # copied, not imported: a revision never changes
STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"
OUTCOMES = "outcome IS NULL OR outcome IN ('succeeded', 'pruned', 'failed', 'cancelled')"


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('spec', JSON, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('trials_created', sa.Integer(), nullable=False),
    sa.Column('ends_seen', sa.Integer(), nullable=False),
    sa.Column('event_seq', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(STATUSES, name=op.f('ck_sweeps_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_sweeps_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_sweeps_tenant_id_idempotency_key'))
    )
    op.create_index('ix_sweeps_tenant_created', 'sweeps', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_sweeps_active', 'sweeps', ['status'], unique=False,
                    postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
    op.create_table('sweep_trials',
    sa.Column('sweep_id', sa.String(length=40), nullable=False),
    sa.Column('trial_index', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('end_seq', sa.Integer(), nullable=True),
    sa.Column('value', sa.Float(precision=53), nullable=True),
    sa.Column('best_epoch', sa.Integer(), nullable=True),
    sa.Column('epochs_run', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(OUTCOMES, name=op.f('ck_sweep_trials_outcome')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_sweep_trials_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_trials_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'trial_index', name=op.f('pk_sweep_trials'))
    )
    op.create_index(op.f('ix_sweep_trials_job_id'), 'sweep_trials', ['job_id'], unique=False)
    op.create_table('sweep_rungs',
    sa.Column('sweep_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('trial_index', sa.Integer(), nullable=False),
    sa.Column('rung', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(precision=53), nullable=True),
    sa.Column('continues', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_rungs_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'seq', name=op.f('pk_sweep_rungs')),
    sa.UniqueConstraint('sweep_id', 'trial_index', 'rung', name=op.f('uq_sweep_rungs_sweep_id_trial_index_rung'))
    )
    op.create_table('sweep_events',
    sa.Column('sweep_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('data', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_events_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'seq', name=op.f('pk_sweep_events'))
    )
    # SQLite cannot add a named reference to a table: batch mode copies it there (indexes
    # and the partial index included); PostgreSQL gets a plain ALTER TABLE.
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('sweep_id', sa.String(length=40), nullable=True))
        batch.create_foreign_key(op.f('fk_jobs_sweep_id_sweeps'), 'sweeps', ['sweep_id'], ['id'],
                                 ondelete='SET NULL')
    op.create_index(op.f('ix_jobs_sweep_id'), 'jobs', ['sweep_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_jobs_sweep_id'), table_name='jobs')
    # SQLite cannot drop a column that holds a reference: batch mode copies the table
    with op.batch_alter_table('jobs') as batch:
        batch.drop_constraint(op.f('fk_jobs_sweep_id_sweeps'), type_='foreignkey')
        batch.drop_column('sweep_id')
    op.drop_table('sweep_events')
    op.drop_table('sweep_rungs')
    op.drop_index(op.f('ix_sweep_trials_job_id'), table_name='sweep_trials')
    op.drop_table('sweep_trials')
    op.drop_index('ix_sweeps_active', table_name='sweeps')
    op.drop_index('ix_sweeps_tenant_created', table_name='sweeps')
    op.drop_table('sweeps')
