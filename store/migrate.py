"""Alembic, programmatically: upgrade to head, and is the schema there (for /readyz)."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import make_engine, normalize_url


def _migrations_dir() -> Path:
    # The migrations package is installed alongside store/; a real directory either way
    # (editable or wheel), which Alembic's script loader needs.
    with as_file(files("migrations")) as path:
        return Path(path)


def alembic_config(url: str | sa.URL | None = None) -> Config:
    """A Config for our migrations, pointing at `url` (else WEIGHTSMITH_DATABASE_URL in env.py)."""
    folder = _migrations_dir()
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder))
    if url is not None:
        config.attributes["url"] = normalize_url(url).render_as_string(hide_password=False)
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_to_head(url: str | sa.URL) -> None:
    """Migrate the database at `url` to the newest revision (creates the tables on a new one)."""
    command.upgrade(alembic_config(url), "head")


def downgrade(url: str | sa.URL, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(target: str | sa.URL | sa.Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = target if isinstance(target, sa.Engine) else make_engine(target)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if engine is not target:
            engine.dispose()


def is_at_head(target: str | sa.URL | sa.Engine) -> bool:
    """True when the database's revision is the newest one (takes a URL or an engine)."""
    return current_revision(target) == head_revision()
