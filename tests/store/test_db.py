from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from store import checkpoints, datasets
from store.db import make_engine, normalize_url
from store.models import Checkpoint, Dataset, Tenant

from .conftest import make_job, make_tenant


def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_foreign_keys_are_enforced(factory: sessionmaker[Session]) -> None:
    with pytest.raises(sa.exc.IntegrityError), factory.begin() as s:
        s.add(Dataset(tenant_id="ten_missing", name="d", format="csv", n_rows=1, x_shape=[1],
                      y_shape=[1], kind="regression", classes=None, sha256="0" * 64,
                      size_bytes=0))
        s.flush()


def test_timestamps_come_back_aware_utc_and_equal(factory: sessionmaker[Session]) -> None:
    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=paris)
    with factory.begin() as s:
        s.add(Tenant(id="ten_x", name="x", created_at=when))
    with factory() as s:
        got = s.get(Tenant, "ten_x")
        assert got is not None
        assert got.created_at.tzinfo is not None
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.created_at == when
        assert got.created_at.hour == 2


def test_naive_datetimes_are_refused(factory: sessionmaker[Session]) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), factory.begin() as s:
        s.add(Tenant(name="naive", created_at=datetime(2026, 1, 1)))
        s.flush()


def test_blobs_are_not_loaded_with_the_row(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        ds = datasets.create(s, tenant.id, name="d", format="npz", n_rows=2, x_shape=[2, 1],
                             y_shape=[2], kind="regression", classes=None, sha256="0" * 64,
                             size_bytes=5, data=[b"123", b"45"])
        job = make_job(s, tenant.id)
        ck = checkpoints.save_checkpoint(s, job.id, 1, "periodic", b"weights", {"loss": 1.0})
        ids = tenant.id, ds.id, ck.id
    with factory() as s:
        ds_row = s.get(Dataset, ids[1])
        ck_row = s.get(Checkpoint, ids[2])
        assert ds_row is not None and ck_row is not None
        assert "blob" not in ds_row.__dict__ and "blob" not in ck_row.__dict__
        assert ck_row.size_bytes == 7
        assert datasets.read_into(s, ids[0], ids[1], lambda n: memoryview(bytearray(n))
                                  ) == b"12345"
        assert checkpoints.get_blob(s, ids[2]) == b"weights"


def test_json_columns_round_trip_nested_values(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        job = make_job(s, tenant.id, epochs=7)
        job.latest = {"loss": 0.25, "nested": {"a": [1, 2.5, None]}}
        job_id = job.id
    with factory() as s:
        row = s.get(type(job), job_id)
        assert row is not None
        assert row.spec["training"]["epochs"] == 7
        assert row.latest == {"loss": 0.25, "nested": {"a": [1, 2.5, None]}}


def test_created_at_defaults_to_now_utc(s: Session) -> None:
    before = datetime.now(UTC)
    tenant = make_tenant(s)
    assert before <= tenant.created_at <= datetime.now(UTC)


def test_non_finite_floats_in_json_become_null(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        job = make_job(s, make_tenant(s).id)
        job.latest = {"loss": float("nan"), "deep": [float("inf"), 1.5]}
        ck = checkpoints.save_checkpoint(s, job.id, 1, "final", b"w", {"val_loss": float("-inf")})
        ids = job.id, ck.id
    with factory() as s:
        assert s.get(type(job), ids[0]).latest == {"loss": None, "deep": [None, 1.5]}
        assert s.get(Checkpoint, ids[1]).metrics == {"val_loss": None}


def test_single_statements_skip_the_transaction_on_postgresql_only(engine: sa.Engine) -> None:
    from store.db import single_statements

    reads = single_statements(engine)
    with reads.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        if engine.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None and driver.autocommit  # no BEGIN, no ROLLBACK
        else:
            assert reads is engine


@pytest.mark.postgres
def test_an_autocommit_driver_connection_fails_as_sqlalchemy_would_and_then_reconnects(
    postgres_url: str,
) -> None:
    """The API's submission path (store.db.autocommit_driver_connection): no transaction, a
    driver error raised as SQLAlchemy's, a dropped connection invalidated with the pool."""
    from store.db import autocommit_driver_connection

    engine = make_engine(postgres_url, pool_pre_ping=False)
    query = "SELECT pg_backend_pid()"
    with autocommit_driver_connection(engine, query) as driver:
        assert driver.autocommit and driver.info.transaction_status.name == "IDLE"
        first_pid = driver.execute(query).fetchone()[0]
    with engine.connect() as conn:  # the same pooled connection, back out of autocommit
        assert conn.connection.driver_connection.autocommit is False
        conn.execute(sa.text("CREATE TABLE t (k int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        conn.commit()
    with pytest.raises(sa.exc.IntegrityError), \
            autocommit_driver_connection(engine, "INSERT") as driver:
        driver.execute("INSERT INTO t VALUES (1)")
    admin = sa.create_engine(postgres_url)
    with admin.connect() as conn:  # as a restart would
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
    admin.dispose()
    with pytest.raises(sa.exc.OperationalError) as dropped, \
            autocommit_driver_connection(engine, query) as driver:
        driver.execute(query)
    assert dropped.value.connection_invalidated
    with autocommit_driver_connection(engine, query) as driver:
        assert driver.execute(query).fetchone()[0] != first_pid
    engine.dispose()
