"""checkpoint bytes in a table of 1 MiB parts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:50:00+00:00

A checkpoint's bytes move from the `checkpoints.blob` column to `checkpoint_parts` rows
(store/checkpoint_parts.py says why). Stored checkpoints move as one part each: readers join
any number of parts in order, so old values need not be re-split. On PostgreSQL the parts are
stored EXTERNAL, as revision 0002 stored the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table('checkpoint_parts',
    sa.Column('checkpoint_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_checkpoint_parts_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('checkpoint_id', 'seq', name=op.f('pk_checkpoint_parts'))
    )
    if _postgresql():
        op.execute("ALTER TABLE checkpoint_parts ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("INSERT INTO checkpoint_parts (checkpoint_id, seq, data)"
               " SELECT id, 0, blob FROM checkpoints")
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_column('blob')


def downgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blob', sa.LargeBinary(), nullable=True))
    if _postgresql():
        op.execute("ALTER TABLE checkpoints ALTER COLUMN blob SET STORAGE EXTERNAL")
        op.execute("UPDATE checkpoints SET blob = (SELECT string_agg(p.data, ''::bytea"
                   " ORDER BY p.seq) FROM checkpoint_parts p WHERE p.checkpoint_id = checkpoints.id)")
    else:  # SQLite has no aggregate that joins blobs: join them here, one checkpoint at a time
        conn = op.get_bind()
        parts = sa.table('checkpoint_parts', sa.column('checkpoint_id'), sa.column('seq'),
                         sa.column('data', sa.LargeBinary))
        checkpoints = sa.table('checkpoints', sa.column('id'), sa.column('blob', sa.LargeBinary))
        for checkpoint_id in conn.scalars(sa.select(checkpoints.c.id)).all():
            blob = b"".join(conn.scalars(sa.select(parts.c.data).where(
                parts.c.checkpoint_id == checkpoint_id).order_by(parts.c.seq)))
            conn.execute(checkpoints.update().where(checkpoints.c.id == checkpoint_id)
                         .values(blob=blob))
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.alter_column('blob', existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table('checkpoint_parts')
