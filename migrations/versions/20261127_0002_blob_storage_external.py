"""blob columns stored EXTERNAL on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:47:00+00:00

PostgreSQL tries pglz on every TOASTed bytea by default. A checkpoint is an npz of float
arrays: its headers let pglz keep going over the whole value, and it then stores it
uncompressed anyway. Measured on a 126 MB npz through psycopg: INSERT 1.96 s with the
default storage, 0.67-0.69 s with EXTERNAL (out of line, never compressed). Storage is a
column property autogenerate does not compare, so the models need no change; SQLite has no
such setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("checkpoints", "blob"), ("datasets", "blob"))


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")  # PostgreSQL's default for bytea
