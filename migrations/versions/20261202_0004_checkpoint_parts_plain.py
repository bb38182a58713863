"""checkpoint parts of one page, stored PLAIN, deleted by a trigger instead of a foreign key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00+00:00

Parts are now at most 8000 bytes, small enough for one heap page, and PostgreSQL keeps them
there with STORAGE PLAIN instead of moving them out of line to the TOAST table
(store/checkpoint_parts.py says why). The id is PLAIN too: a row over 2 kB has its other
columns TOASTed first, and the 40-byte id would be, once per part. Storage applies to rows
written from now on: parts stored under revision 0003 stay TOASTed and read as before, so
nothing is rewritten.

So many rows made the foreign key's per-row check a third of a large save: it is replaced
by a trigger that deletes a checkpoint's parts with it (store/models.py, CheckpointPart).
The statements are copied here, not imported, so that this revision never changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = 'fk_checkpoint_parts_checkpoint_id_checkpoints'
DELETE_PARTS_POSTGRESQL = (
    "CREATE OR REPLACE FUNCTION delete_checkpoint_parts() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN DELETE FROM checkpoint_parts WHERE checkpoint_id = OLD.id; RETURN NULL; END $$",
    "CREATE TRIGGER checkpoints_delete_parts AFTER DELETE ON checkpoints FOR EACH ROW"
    " EXECUTE FUNCTION delete_checkpoint_parts()",
)
DELETE_PARTS_SQLITE = (
    "CREATE TRIGGER checkpoints_delete_parts AFTER DELETE ON checkpoints FOR EACH ROW"
    " BEGIN DELETE FROM checkpoint_parts WHERE checkpoint_id = OLD.id; END",
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _set_storage(storage: str, id_storage: str | None = None) -> None:
    op.execute(f"ALTER TABLE checkpoint_parts ALTER COLUMN data SET STORAGE {storage},"
               f" ALTER COLUMN checkpoint_id SET STORAGE {id_storage or storage}")


def upgrade() -> None:
    with op.batch_alter_table('checkpoint_parts', schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_='foreignkey')
    for statement in DELETE_PARTS_POSTGRESQL if _postgresql() else DELETE_PARTS_SQLITE:
        op.execute(statement)
    if _postgresql():
        _set_storage("PLAIN")


def downgrade() -> None:
    op.execute("DROP TRIGGER checkpoints_delete_parts" + (" ON checkpoints" if _postgresql() else ""))
    if _postgresql():
        op.execute("DROP FUNCTION delete_checkpoint_parts()")
        _set_storage("EXTERNAL", id_storage="EXTENDED")
    # The trigger leaves no orphans, but a foreign key cannot be made over any (a part
    # written by hand, say).
    op.execute("DELETE FROM checkpoint_parts WHERE checkpoint_id NOT IN (SELECT id FROM checkpoints)")
    with op.batch_alter_table('checkpoint_parts', schema=None) as batch_op:
        batch_op.create_foreign_key(FOREIGN_KEY, 'checkpoints', ['checkpoint_id'], ['id'],
                                    ondelete='CASCADE')
