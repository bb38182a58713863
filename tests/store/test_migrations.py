from __future__ import annotations

import os

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store import checkpoint_parts, checkpoints, claims, jobs, tenants
from store.db import make_engine, make_session_factory
from store.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    is_at_head,
    upgrade_to_head,
)
from store.models import Base

TABLES = {"tenants", "api_keys", "datasets", "jobs", "metrics", "checkpoints",
          "checkpoint_parts", "job_events", "job_leases", "webhooks", "webhook_deliveries",
          "webhook_attempts", "reproductions", "registered_models", "model_versions",
          "model_aliases", "forks", "batch_predictions", "batch_chunks", "sweeps",
          "sweep_trials", "sweep_rungs", "sweep_events", "lr_range_tests", "dataset_parts",
          "uploads", "upload_parts", "job_diagnostics"}


def schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_matches_the_models(db_url: str) -> None:
    assert current_revision(db_url) is None and not is_at_head(db_url)
    upgrade_to_head(db_url)
    assert current_revision(db_url) == head_revision() is not None
    assert is_at_head(db_url)
    assert schema_diff(db_url) == []


def test_a_database_from_create_all_differs_from_nothing_but_is_not_at_head(db_url: str) -> None:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    assert is_at_head(engine) is False  # no alembic_version: /readyz must say "not migrated"
    engine.dispose()
    assert schema_diff(db_url) == []


def test_upgrade_downgrade_upgrade_round_trips(db_url: str) -> None:
    upgrade_to_head(db_url)
    assert tables(db_url) == TABLES | {"alembic_version"}
    downgrade(db_url, "base")
    assert tables(db_url) == {"alembic_version"}
    assert current_revision(db_url) is None
    upgrade_to_head(db_url)
    assert tables(db_url) == TABLES | {"alembic_version"}
    assert schema_diff(db_url) == []


def test_the_migrated_schema_runs_the_query_functions(db_url: str) -> None:
    upgrade_to_head(db_url)
    upgrade_to_head(db_url)  # idempotent: a second `weightsmith db upgrade` changes nothing
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        tenant = tenants.get_or_create(s, "acme")
        job = jobs.create_job(s, tenant.id, {"name": "n", "training": {"epochs": 2}}, None)
        claimed = claims.claim_job(s, job.id, "w1", 60)
        assert claimed is not None and claimed.attempts == 1
    engine.dispose()


def test_the_comparison_notices_a_drifted_schema(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE metrics ADD COLUMN extra INTEGER")
    engine.dispose()
    diff = schema_diff(db_url)
    assert [(d[0], d[3].name) for d in diff] == [("remove_column", "extra")]  # type: ignore[index]


def test_stored_checkpoint_bytes_survive_the_move_into_parts_and_back(db_url: str) -> None:
    """Revision 0003 moves `checkpoints.blob` into `checkpoint_parts`, and its downgrade joins
    them back. A value moved as one 1 MiB part is still read after 0004 makes the storage
    PLAIN (on PostgreSQL it stays TOASTed, as it was written)."""
    from alembic import command

    blob = bytes(range(256)) * 4096
    parted = os.urandom(3 * checkpoint_parts.PART_BYTES + 5)
    command.upgrade(alembic_config(db_url), "0002")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (id, name, created_at)"
                             " VALUES ('tnt_1', 'acme', CURRENT_TIMESTAMP)"))
        conn.execute(sa.text(
            "INSERT INTO checkpoints (id, tenant_id, epoch, kind, metrics, size_bytes, sha256,"
            " blob, created_at) VALUES ('ckpt_1', 'tnt_1', 0, 'imported', '{}', :size, :sha,"
            " :blob, CURRENT_TIMESTAMP)"), {"size": len(blob), "sha": "0" * 64, "blob": blob})
    upgrade_to_head(db_url)
    factory = make_session_factory(engine)
    with factory() as s:
        assert checkpoints.get_blob(s, "ckpt_1") == blob
        checkpoints.import_checkpoint(s, "tnt_1", blob=parted)  # four parts
        s.commit()
    engine.dispose()
    command.downgrade(alembic_config(db_url), "0002")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, blob FROM checkpoints")).all())
    engine.dispose()
    assert {key: bytes(value) for key, value in stored.items() if key == "ckpt_1"} == {
        "ckpt_1": blob}
    assert sorted(bytes(value) for value in stored.values()) == sorted([blob, parted])


def test_revision_0008_indexes_datasets_by_name_and_sha256_and_drops_them_again(
    db_url: str,
) -> None:
    from alembic import command

    def dataset_indexes() -> dict[str, list[str | None]]:
        engine = make_engine(db_url)
        try:
            return {ix["name"]: ix["column_names"]
                    for ix in sa.inspect(engine).get_indexes("datasets") if ix["name"]}
        finally:
            engine.dispose()

    upgrade_to_head(db_url)
    indexes = dataset_indexes()
    assert indexes["ix_datasets_tenant_name"] == ["tenant_id", "name", "created_at"]
    assert indexes["ix_datasets_tenant_sha256"] == ["tenant_id", "sha256"]
    command.downgrade(alembic_config(db_url), "0008-1")
    assert not {"ix_datasets_tenant_name", "ix_datasets_tenant_sha256"} & set(dataset_indexes())
    assert "ix_datasets_tenant_created" in dataset_indexes()
    upgrade_to_head(db_url)
    assert schema_diff(db_url) == []


def test_revision_0018_adds_the_lr_range_tests_table_and_drops_it_again(db_url: str) -> None:
    from alembic import command

    upgrade_to_head(db_url)
    assert "lr_range_tests" in tables(db_url)
    command.downgrade(alembic_config(db_url), "0018-1")
    assert "lr_range_tests" not in tables(db_url) and "jobs" in tables(db_url)
    upgrade_to_head(db_url)
    assert schema_diff(db_url) == []
