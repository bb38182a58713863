"""Alembic environment: our models' metadata, batch mode for SQLite, our engine settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context

from store.columns import UTCDateTime
from store.db import driver_connection, make_engine, normalize_url
from store.models import Base

config = context.config
target_metadata = Base.metadata

# Logging from the ini only when run as the alembic CLI; programmatic callers keep theirs.
if config.config_file_name is not None and not config.attributes.get("url"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("url") or os.environ.get("WEIGHTSMITH_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "no database URL: pass one to store.migrate or set WEIGHTSMITH_DATABASE_URL"
        )
    return normalize_url(url).render_as_string(hide_password=False)


def render_item(type_: str, obj: object, autogen_context: Any) -> str | bool:
    """Write our UTC column type as the plain type it stores, so revisions never import store."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    # render_as_batch: SQLite cannot ALTER most things, batch mode copies the table instead.
    context.configure(
        target_metadata=target_metadata, render_as_batch=True, compare_type=True,
        render_item=render_item, **kwargs
    )


def run_migrations_offline() -> None:
    _configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


@contextmanager
def sqlite_foreign_keys_off(conn: sa.Connection) -> Iterator[None]:
    """On SQLite, run the migration with foreign keys off, then check them.

    Batch mode rebuilds a table by copying it and dropping the old one, and with foreign keys
    on, that DROP deletes every row referencing the table through ON DELETE CASCADE (a
    checkpoint's parts, say): Alembic's batch documentation says to turn them off. The
    pragma is ignored inside a transaction, so it goes to the driver before one begins.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = driver_connection(conn)
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


def _run_on(conn: sa.Connection) -> None:
    _configure(connection=conn)
    with sqlite_foreign_keys_off(conn), context.begin_transaction():
        context.run_migrations()
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:  # raising here rolls the migration back
                raise RuntimeError(f"the migration left rows with dangling references: {broken}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
