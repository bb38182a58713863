"""Store fixtures: every test runs on SQLite (a file in tmp_path) and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from store import submissions, tenants
from store.db import make_engine, make_session_factory
from store.models import Base, Job, Tenant
from store.statuses import status_event

NO_QUOTA = 1_000_000  # the tests' tenants may have any number of active jobs

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """An empty database: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on a database with the models' tables (migrations are tested on their own)."""
    eng = make_engine(db_url)
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: sa.Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def s(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session inside one transaction, committed at the end of the test."""
    with factory.begin() as session:
        yield session


def spec(epochs: int = 5, **checkpoints: Any) -> dict[str, Any]:
    """A job spec as the store sees it: plain JSON with a name, epochs and a policy."""
    return {
        "name": "digits-mlp",
        "model": {"layers": [{"type": "dense", "units": 10}]},
        "training": {"epochs": epochs},
        "checkpoints": {"monitor": "val_loss", **checkpoints},
    }


def make_tenant(s: Session, name: str = "acme") -> Tenant:
    return tenants.get_or_create(s, name)


def make_job(s: Session, tenant_id: str, epochs: int = 5, dataset_id: str | None = None) -> Job:
    """A job submitted the way the API submits one: `submissions.submit` with its first
    "queued" status event, in the test's transaction."""
    made = submissions.submit(s, tenant_id, spec(epochs), dataset_id, None, None, cap=NO_QUOTA,
                              first_event=status_event("queued"))
    assert made.job is not None
    job = s.get(Job, made.job["id"])
    assert job is not None
    return job
