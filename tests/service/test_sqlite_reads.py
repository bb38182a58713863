"""Embedded mode: API reads never wait for a worker's commit (issue 19).

Every SQLite transaction began with BEGIN IMMEDIATE, reads included, so a GET queued behind a
worker writing 600 MB of checkpoints and answered 503 "database is locked" once the busy
timeout ran out. Read-only sessions now begin a deferred transaction: a WAL snapshot.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

import store.db
from config.settings import Settings
from tests.service.helpers import mlp_spec

BIG = 24 * 1024 * 1024  # a large checkpoint, written in 8000-byte parts in one transaction


class HeldCommit:
    """A worker-like process' commit of a big checkpoint, holding the write lock until told."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.engine = store.db.make_engine(settings.database_url)
        self.job_id = job_id
        self.writing = threading.Event()
        self.release = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        from store import checkpoints

        try:
            with store.db.make_session_factory(self.engine).begin() as s:
                checkpoints.save_checkpoint(s, self.job_id, 1, "periodic", os.urandom(BIG))
                s.flush()
                self.writing.set()
                self.release.wait(30)
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)
            self.writing.set()

    def __enter__(self) -> HeldCommit:
        self.thread.start()
        assert self.writing.wait(60)
        assert self.errors == []
        return self

    def __exit__(self, *_: Any) -> None:
        self.release.set()
        self.thread.join(60)
        self.engine.dispose()
        assert self.errors == []


@pytest.fixture
def short_busy_timeout(app: OpenAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 300 ms busy timeout, so that a read that waits for the lock fails within the test."""
    monkeypatch.setattr(store.db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    app.extensions["weightsmith"].engine.dispose()  # new connections take the new timeout


def test_reads_answer_while_a_worker_commits_a_big_checkpoint(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str], settings: Settings,
    short_busy_timeout: None,
) -> None:
    job = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2), headers=auth)
    assert job.status_code == 202
    job_id = job.get_json()["id"]
    with HeldCommit(settings, job_id):
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/checkpoints", "/v1/jobs",
                     f"/v1/jobs/{job_id}/metrics", "/v1/datasets"):
            response = client.get(path, headers=auth)
            assert response.status_code == 200, (path, response.get_json())
        # the snapshot before the commit: the checkpoint is not there yet
        listed = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).get_json()
        assert listed["items"] == []
    listed = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).get_json()
    assert [c["size_bytes"] for c in listed["items"]] == [BIG]


def test_a_writing_session_still_waits_for_the_lock(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str], settings: Settings,
    short_busy_timeout: None,
) -> None:
    """Why reads needed their own sessions: BEGIN IMMEDIATE waits for the writer, then fails."""
    from sqlalchemy.exc import OperationalError

    from store import jobs

    job_id = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2),
                         headers=auth).get_json()["id"]
    factory = app.extensions["weightsmith"].session_factory
    with HeldCommit(settings, job_id), pytest.raises(OperationalError, match="locked"), \
            factory() as session:
        jobs.get(session, session.scalar(_tenant_of(job_id)), job_id)


def _tenant_of(job_id: str) -> Any:
    import sqlalchemy as sa

    from store.models import Job

    return sa.select(Job.tenant_id).where(Job.id == job_id)
