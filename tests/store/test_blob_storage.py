"""Revisions 0002-0004 and 0016: how PostgreSQL stores checkpoint and dataset bytes (issues 3
and 18): EXTERNAL, never compressed, and parts PLAIN, in the row."""

from __future__ import annotations

import sqlalchemy as sa

from store.db import make_engine
from store.migrate import current_revision, downgrade, head_revision, upgrade_to_head


def test_blob_columns_are_stored_external_on_postgresql(db_url: str) -> None:
    """Revision 0002: no pglz attempt on checkpoint and dataset bytes (and back on downgrade)."""
    def storage() -> dict[str, str]:
        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT c.relname || '.' || a.attname, a.attstorage FROM pg_attribute a"
                    " JOIN pg_class c ON c.oid = a.attrelid"
                    " WHERE (a.attname = 'blob' AND c.relname IN ('checkpoints', 'datasets'))"
                    " OR (a.attname IN ('data', 'checkpoint_id', 'dataset_id', 'upload_id')"
                    "     AND c.relname IN ('checkpoint_parts', 'dataset_parts', 'upload_parts'))"
                    ))
                return {name: str(kind) for name, kind in rows}
        finally:
            engine.dispose()

    upgrade_to_head(db_url)
    if sa.engine.make_url(db_url).get_backend_name() != "postgresql":
        assert current_revision(db_url) == head_revision()  # SQLite has no storage to set
        return
    assert storage() == {"checkpoint_parts.data": "p", "checkpoint_parts.checkpoint_id": "p",
                         "dataset_parts.data": "p", "dataset_parts.dataset_id": "p",
                         "upload_parts.data": "p", "upload_parts.upload_id": "p"}
    downgrade(db_url, "0011")
    assert storage() == {"checkpoint_parts.data": "p", "checkpoint_parts.checkpoint_id": "p",
                         "datasets.blob": "e"}
    downgrade(db_url, "0003")
    assert storage() == {"checkpoint_parts.data": "e", "checkpoint_parts.checkpoint_id": "x",
                         "datasets.blob": "e"}
    downgrade(db_url, "0002")
    assert storage() == {"checkpoints.blob": "e", "datasets.blob": "e"}
    downgrade(db_url, "0001")
    assert storage() == {"checkpoints.blob": "x", "datasets.blob": "x"}
