"""Revisions 0002 and 0003: checkpoint and dataset bytes stored EXTERNAL on PostgreSQL (issue 3)."""

from __future__ import annotations

import sqlalchemy as sa

from store.db import make_engine
from store.migrate import current_revision, downgrade, upgrade_to_head


def test_blob_columns_are_stored_external_on_postgresql(db_url: str) -> None:
    """Revision 0002: no pglz attempt on checkpoint and dataset bytes (and back on downgrade)."""
    def storage() -> dict[str, str]:
        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT c.relname, a.attstorage FROM pg_attribute a"
                    " JOIN pg_class c ON c.oid = a.attrelid"
                    " WHERE (a.attname = 'blob' AND c.relname IN ('checkpoints', 'datasets'))"
                    " OR (a.attname = 'data' AND c.relname = 'checkpoint_parts')"))
                return {name: str(kind) for name, kind in rows}
        finally:
            engine.dispose()

    upgrade_to_head(db_url)
    if sa.engine.make_url(db_url).get_backend_name() != "postgresql":
        assert current_revision(db_url) == "0003"  # nothing to set on SQLite, which has no storage
        return
    assert storage() == {"checkpoint_parts": "e", "datasets": "e"}
    downgrade(db_url, "0002")
    assert storage() == {"checkpoints": "e", "datasets": "e"}
    downgrade(db_url, "0001")
    assert storage() == {"checkpoints": "x", "datasets": "x"}
