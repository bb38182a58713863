"""What a request needs from its app, for blueprints and helpers to import (never the app
factory: service.app imports the blueprints, so they importing it back would be a cycle).

`create_app` puts a :class:`Services` into ``app.extensions[EXTENSION_KEY]``; a view reaches
it with `services()` and opens its transaction with `transaction()` or `read_session()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from service.model_cache import ModelCache
from service.registry_cache import RegistryCache

EXTENSION_KEY = "weightsmith"


@dataclass
class Services:
    """What every request needs, built once per app (tests build many apps side by side)."""

    settings: Settings
    session_factory: sessionmaker[Session]
    engine: Any
    dispatcher: Any
    model_cache: ModelCache
    # Sessions that only read (store.db.make_session_factory(reads=True)): on SQLite they
    # never wait for a worker's commit.
    read_sessions: sessionmaker[Session] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Model predict's resolutions (alias/version -> checkpoint), service/registry_cache.py;
    # without Redis it caches nothing.
    registry_cache: RegistryCache = field(default_factory=lambda: RegistryCache(None))


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]


@contextmanager
def transaction() -> Iterator[Session]:
    """One request-scoped transaction: committed on success, rolled back on any error."""
    with services().session_factory.begin() as session:
        yield session


@contextmanager
def read_session() -> Iterator[Session]:
    """A session for reads only (no commit; closed at the end); on SQLite it reads a snapshot
    and never waits for a writer, so it must not write."""
    found = services()
    factory = found.read_sessions or found.session_factory
    with factory() as session:
        yield session
