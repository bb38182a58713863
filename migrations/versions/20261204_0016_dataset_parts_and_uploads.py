"""dataset bytes in parts, as .npy frames; uploads in pieces

Revision ID: 0016
Revises: 0018
Create Date: 2026-12-04 15:00:00+00:00

A dataset was one compressed npz in `datasets.blob`; its bytes move to `dataset_parts`, laid
out as checkpoint_parts (revision 0004: parts of one page, PLAIN, a delete trigger) and
holding X and y as plain .npy frames one after the other (core/datasets/stored.py), so a job
reads them straight into its arrays without inflating anything. `size_bytes` becomes the
length of the stored frames (the bytes the dataset occupies, what the storage quota counts);
the downgrade writes the npz back and its length. `uploads` and `upload_parts` hold files
arriving in pieces (`/v1/uploads`).

The stored frames are the npz's own members (.npy files) laid end to end, so the move needs
only the standard library. The framing and the trigger statements are copied here, not
imported, so that this revision never changes.
"""

from __future__ import annotations

import ast
import io
import math
import zipfile
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0018'
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


def _frames(npz: bytes) -> bytes:
    """The stored bytes of an npz of X and y: its two members, which are .npy files, one
    after the other, each padded to ALIGN bytes (core.datasets.stored as of this revision;
    the standard library suffices, so the migration needs no NumPy)."""
    with zipfile.ZipFile(io.BytesIO(npz)) as archive:
        members = [archive.read(name) for name in ("X.npy", "y.npy")]
    return b"".join(member + bytes(-len(member) % ALIGN) for member in members)


def _npy_length(stored: bytes, offset: int) -> int:
    """The length of the .npy file at `offset`: its header, then its data."""
    major = stored[offset + 6]
    size_bytes = 2 if major == 1 else 4
    start = offset + 8 + size_bytes
    header_length = int.from_bytes(stored[offset + 8:start], "little")
    header = ast.literal_eval(stored[start:start + header_length].decode("latin-1"))
    kind, width = header["descr"][1], int(header["descr"][2:] or 0)
    itemsize = 4 * width if kind == "U" else width
    return start + header_length - offset + math.prod(header["shape"]) * itemsize


def _npz(stored: bytes) -> bytes:
    """The npz of the two .npy files in `stored`, compressed as np.savez_compressed does."""
    out = io.BytesIO()
    offset = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("X.npy", "y.npy"):
            length = _npy_length(stored, offset)
            archive.writestr(name, stored[offset:offset + length])
            offset += length + -length % ALIGN
    return out.getvalue()


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
        stored = _frames(bytes(blob))
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
        blob = _npz(stored)
        conn.execute(DATASETS.update().where(DATASETS.c.id == dataset_id)
                     .values(blob=blob, size_bytes=len(blob)))
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
