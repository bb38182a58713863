"""Engines and session factories for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option of the engine behind read-only sessions (make_session_factory(reads=True)).
READ_ONLY_OPTION = "weightsmith_read_only"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_json(value: Any) -> str:
    """JSON for our columns: NaN and inf become null (PostgreSQL's JSONB refuses them, and a
    diverged epoch's metrics hold them).

    The encoder refuses them itself (allow_nan=False), in C; only a value that holds one is
    walked in Python. Walking every value cost a job submission ~0.2 ms for its spec alone.
    """
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def normalize_url(url: str | sa.URL) -> sa.URL:
    """The URL with PostgreSQL pinned to psycopg 3 (``postgresql://`` means psycopg2 otherwise)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    """SQLAlchemy's recipe for real transactions on pysqlite, plus WAL and lock waiting.

    pysqlite's own transaction handling emits BEGIN lazily and never for SELECTs, which breaks
    isolation; so the driver is put in autocommit mode and SQLAlchemy emits BEGIN itself.
    BEGIN IMMEDIATE takes the write lock at the start: a transaction that reads and then writes
    cannot fail half-way with SQLITE_BUSY when another process wrote in between (WAL readers are
    never blocked by it), and concurrent writers queue on busy_timeout instead of erroring.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A read-only session's deferred BEGIN reads a WAL snapshot and never waits for the
        # write lock: under BEGIN IMMEDIATE every API read queued behind a worker's commit
        # (600 MB of checkpoint parts) and gave up with "database is locked" (issue 19).
        reads = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")


def make_engine(url: str | sa.URL, **kwargs: Any) -> Engine:
    """An engine for `url`: SQLite gets WAL, foreign keys and a busy timeout; PostgreSQL psycopg 3.

    Extra keyword arguments go to `sqlalchemy.create_engine`; connections are pinged before
    each use (``pool_pre_ping``) unless the caller says otherwise. Processes that fork after making
    an engine must call ``engine.dispose(close=False)`` in the child (the worker does).
    """
    parsed = normalize_url(url)
    kwargs.setdefault("json_serializer", dumps_json)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(parsed, **kwargs)


def single_statements(engine: Engine) -> Engine:
    """`engine` for work that is one statement per transaction: autocommit on PostgreSQL.

    A statement in a transaction costs two more round trips (BEGIN, then COMMIT or ROLLBACK),
    which a worker polling its job five times a second would pay on its training thread. (The
    API's job submission goes further: `autocommit_driver_connection`.)
    SQLite's engine stays as it is: its BEGIN IMMEDIATE listener (``_configure_sqlite``) is
    what makes its transactions real, and multi-statement work on it stays atomic.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def make_session_factory(engine: Engine, *, reads: bool = False) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (views serialise after the block).

    ``reads=True``: sessions that only read. On SQLite they begin a deferred transaction (a
    snapshot of the WAL, never blocked by a writer) instead of BEGIN IMMEDIATE; a write in
    one would fail with SQLITE_BUSY when another writer committed first, so never write in
    them. Elsewhere they are ordinary sessions.
    """
    bind = engine.execution_options(**{READ_ONLY_OPTION: True}) if reads else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def read_bytea(s: Session, table: sa.Table, column: str, key: str, value: Any) -> bytes | None:
    """``SELECT column FROM table WHERE key = value`` for one large bytes value, or None.

    On PostgreSQL the row comes back in psycopg's binary format: in text format a bytea
    travels hex-encoded (twice its size) and is decoded in Python, which for a 126 MB
    checkpoint cost 1.2-2.7 s against 0.6-0.9 s in binary (benchmarks/service/README.md).
    SQLAlchemy has no per-statement switch for it, so this reads through the session's own
    driver connection, inside its transaction. Other databases use a plain SELECT.
    """
    if s.autoflush:  # as a query through the session would: see rows added but not flushed
        s.flush()
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        blob = s.scalar(sa.select(table.c[column]).where(table.c[key] == value))
        return None if blob is None else bytes(blob)
    quote = conn.dialect.identifier_preparer.quote  # SQLAlchemy's quoting: no driver import
    query = f"SELECT {quote(column)} FROM {quote(table.name)} WHERE {quote(key)} = %s"
    with driver_connection(conn).cursor(binary=True) as cur:
        cur.execute(query, (value,))
        row = cur.fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def driver_connection(conn: sa.Connection) -> Any:
    """The DBAPI driver's own connection under `conn`, for what SQLAlchemy cannot say (binary
    results, COPY); statements on it run inside `conn`'s transaction."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _as_sqlalchemy_error(
    dialect: sa.Dialect, statement: str | None, exc: Exception, invalidated: bool = False
) -> BaseException:
    return sa.exc.DBAPIError.instance(
        statement, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
        connection_invalidated=invalidated, dialect=dialect,
    )


@contextmanager
def transaction_driver_connection(conn: sa.Connection, statement: str) -> Iterator[Any]:
    """`conn`'s driver connection, to run `statement` inside `conn`'s transaction; the
    driver's errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), as they
    do from its own statements. `autocommit_driver_connection` is the same outside one."""
    try:
        yield driver_connection(conn)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy_error(conn.dialect, statement, exc) from exc


@contextmanager
def autocommit_driver_connection(engine: Engine, statement: str) -> Iterator[Any]:
    """A pooled connection's own driver connection in autocommit, to run `statement` on the
    API's hottest path (store.submissions). SQLAlchemy's Connection, autocommit execution
    option and execution context cost a job submission 0.1-0.2 ms of CPU, more than its
    statement. What SQLAlchemy would do is done here: errors come out as SQLAlchemy's, and
    a dropped connection is invalidated with every pooled one beside it (`engine.dispose()`),
    so that the next request reconnects.
    """
    fairy = engine.raw_connection()
    driver: Any = fairy.driver_connection
    try:
        driver.autocommit = True
        yield driver
    except engine.dialect.loaded_dbapi.Error as exc:
        dropped = engine.dialect.is_disconnect(exc, driver, None)
        if dropped:
            fairy.invalidate(exc)
            engine.dispose()
        raise _as_sqlalchemy_error(engine.dialect, statement, exc, dropped) from exc
    finally:
        if fairy.is_valid:
            driver.autocommit = False  # sessions share the pool
        fairy.close()
