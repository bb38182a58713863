"""dataset bytes in parts, as .npy frames; uploads in pieces

Revision ID: 0016
Revises: 0011
Create Date: 2026-12-04 15:00:00+00:00

A dataset was one compressed npz in `datasets.blob`; its bytes move to `dataset_parts`, laid
out as checkpoint_parts (revision 0004: parts of one page, PLAIN, a delete trigger) and
holding X and y as plain .npy frames one after the other (core/datasets/stored.py), so a job
reads them straight into its arrays without inflating anything. `size_bytes` becomes the
length of the stored frames (the bytes the dataset occupies, what the storage quota counts);
the downgrade writes the npz back and its length. `uploads` and `upload_parts` hold files
arriving in pieces (`/v1/uploads`).

The framing and the trigger statements are copied here, not imported, so that this revision
never changes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PART_BYTES = 8000
ALIGN = 64
PART_TABLES = (("datasets", "dataset_parts", "dataset_id"),
               ("uploads", "upload_parts", "upload_id"))


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _triggers(owner: str, parts: str, key: str) -> tuple[str, ...]:
    if _postgresql():
        return (f"CREATE OR REPLACE FUNCTION delete_{parts}() RETURNS trigger LANGUAGE plpgsql"
                f" AS $$ BEGIN DELETE FROM {parts} WHERE {key} = OLD.id; RETURN NULL; END $$",
                f"CREATE TRIGGER {owner}_delete_parts AFTER DELETE ON {owner} FOR EACH ROW"
                f" EXECUTE FUNCTION delete_{parts}()")
    return (f"CREATE TRIGGER {owner}_delete_parts AFTER DELETE ON {owner} FOR EACH ROW"
            f" BEGIN DELETE FROM {parts} WHERE {key} = OLD.id; END",)


def _parts_table(name: str, key: str) -> None:
    op.create_table(name,
    sa.Column(key, sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint(key, 'seq', name=op.f(f'pk_{name}'))
    )
    if _postgresql():
        op.execute(f"ALTER TABLE {name} ALTER COLUMN data SET STORAGE PLAIN,"
                   f" ALTER COLUMN {key} SET STORAGE PLAIN")


def _frames(arrays: Sequence[np.ndarray]) -> Iterator[bytes]:
    """core.datasets.stored.frames as of this revision."""
    for array in arrays:
        array = np.ascontiguousarray(array)
        out = io.BytesIO()
        header = np.lib.format.header_data_from_array_1_0(array)
        try:
            np.lib.format.write_array_header_1_0(out, header)
        except ValueError:
            out = io.BytesIO()
            np.lib.format.write_array_header_2_0(out, header)
        data = array.tobytes()
        yield out.getvalue() + data + bytes(-(out.tell() + len(data)) % ALIGN)


def _unframe(stored: bytes) -> list[np.ndarray]:
    arrays, offset = [], 0
    for _ in range(2):
        stream = io.BytesIO(stored[offset:])
        version = np.lib.format.read_magic(stream)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(stream)
        start = offset + stream.tell()
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        flat = np.frombuffer(stored, dtype=dtype, count=nbytes // dtype.itemsize, offset=start)
        arrays.append(flat.reshape(shape, order="F" if fortran else "C"))
        offset = start + nbytes
        offset += -offset % ALIGN
    return arrays


DATASETS = sa.table('datasets', sa.column('id', sa.String), sa.column('blob', sa.LargeBinary),
                    sa.column('size_bytes', sa.BigInteger))
PARTS = sa.table('dataset_parts', sa.column('dataset_id', sa.String),
                 sa.column('seq', sa.Integer), sa.column('data', sa.LargeBinary))


def upgrade() -> None:
    _parts_table('dataset_parts', 'dataset_id')
    op.create_table('uploads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('received_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_uploads_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index('ix_uploads_expires_at', ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_tenant_id'), ['tenant_id'], unique=False)
    _parts_table('upload_parts', 'upload_id')

    # One dataset at a time: each is read, reframed and written before the next is read.
    conn = op.get_bind()
    ids = conn.scalars(sa.select(DATASETS.c.id).where(DATASETS.c.blob.is_not(None))).all()
    for dataset_id in ids:
        blob = conn.scalar(sa.select(DATASETS.c.blob).where(DATASETS.c.id == dataset_id))
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            stored = b"".join(_frames([npz["X"], npz["y"]]))
        rows = [{"dataset_id": dataset_id, "seq": seq, "data": stored[start:start + PART_BYTES]}
                for seq, start in enumerate(range(0, len(stored), PART_BYTES))]
        conn.execute(PARTS.insert(), rows)
        conn.execute(DATASETS.update().where(DATASETS.c.id == dataset_id)
                     .values(size_bytes=len(stored)))
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('blob')
    # After the drop: SQLite's batch mode rebuilds the table, which would lose its triggers.
    for owner, parts, key in PART_TABLES:
        for statement in _triggers(owner, parts, key):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blob', sa.LargeBinary(), nullable=True))
    if _postgresql():
        op.execute("ALTER TABLE datasets ALTER COLUMN blob SET STORAGE EXTERNAL")
    conn = op.get_bind()
    ids = conn.scalars(sa.select(PARTS.c.dataset_id).distinct()).all()
    for dataset_id in ids:
        stored = b"".join(conn.scalars(sa.select(PARTS.c.data).where(
            PARTS.c.dataset_id == dataset_id).order_by(PARTS.c.seq)))
        X, y = _unframe(stored)
        out = io.BytesIO()
        np.savez_compressed(out, X=X, y=y)
        conn.execute(DATASETS.update().where(DATASETS.c.id == dataset_id)
                     .values(blob=out.getvalue(), size_bytes=len(out.getvalue())))
    for owner, parts, _key in reversed(PART_TABLES):
        op.execute(f"DROP TRIGGER {owner}_delete_parts" + (f" ON {owner}" if _postgresql() else ""))
        if _postgresql():
            op.execute(f"DROP FUNCTION delete_{parts}()")
    op.drop_table('upload_parts')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_tenant_id'))
        batch_op.drop_index('ix_uploads_expires_at')
    op.drop_table('uploads')
    op.drop_table('dataset_parts')
