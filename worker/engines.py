"""One database engine per URL per worker process, made after any fork.

The tasks open their sessions here, and the pool's ``worker_process_init`` hook disposes
what a child inherited (worker/celery_app.py): a module of its own, so the Celery app and
the tasks both reach it without importing each other.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings

ENGINES: dict[str, Engine] = {}


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """One engine per database URL per process (created lazily, after any fork)."""
    from store.db import make_engine, make_session_factory

    engine = ENGINES.get(settings.database_url)
    if engine is None:
        engine = ENGINES[settings.database_url] = make_engine(settings.database_url)
    return make_session_factory(engine)


def read_sessions(settings: Settings) -> sessionmaker[Session]:
    """Read-only sessions on the same engine (on SQLite they never wait for a writer)."""
    from store.db import make_session_factory

    session_factory(settings)
    return make_session_factory(ENGINES[settings.database_url], reads=True)


def dispose_engines() -> None:
    """Forget pooled connections inherited over fork, without closing the parent's sockets."""
    for engine in ENGINES.values():
        engine.dispose(close=False)
