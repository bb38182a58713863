"""Fixtures for the fault and load tests: the production backends (PostgreSQL + Redis) or the
embedded ones, with real worker and beat processes, and a private redis-server that may be
restarted. The comparison with an uninterrupted run is in compare.py, the processes the tests
start themselves in processes.py.

The worker processes come from tests/worker/conftest.py (`make_backend`, `Backend`): the same
short lease (FAST_ENV there: 8 s), heartbeat (1 s) and reconcile interval (1 s), so take-overs
happen in seconds.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.statuses import TERMINAL_STATUSES as TERMINAL
from tests.reliability.processes import RedisServer
from tests.worker.conftest import Backend, make_backend

# -- backends ----------------------------------------------------------------------------------


BackendFactory = Callable[..., Backend]


@pytest.fixture
def production(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[BackendFactory]:
    """Make the production backend set; keyword arguments override WEIGHTSMITH_* for processes.

    `broker_url=` replaces the test's Redis db (e.g. a private redis-server), `database_query=`
    appends query parameters to the processes' database URL (e.g. an application_name to find
    their PostgreSQL backends by).
    """
    made: list[Backend] = []

    def make(*, broker_url: str | None = None, database_query: str = "",
             **env: str) -> Backend:
        b = make_backend("production", tmp_path, postgres_url, broker_url or redis_url)
        for name, value in env.items():
            b.env[f"WEIGHTSMITH_{name.upper()}"] = value
        if database_query:
            b.env["WEIGHTSMITH_DATABASE_URL"] = f"{postgres_url}?{database_query}"
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            b.kill_all()
            print(b.logs())  # pytest shows captured output only when the test fails
            b.sessions.kw["bind"].dispose()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[BackendFactory]:
    """The embedded set (`weightsmith serve`'s default): SQLite file + kombu filesystem broker
    in tmp_path; keyword arguments override WEIGHTSMITH_* for the processes."""
    made: list[Backend] = []

    def make(**env: str) -> Backend:
        b = make_backend("embedded", tmp_path, None, None)
        for name, value in env.items():
            b.env[f"WEIGHTSMITH_{name.upper()}"] = value
        made.append(b)
        return b

    try:
        yield make
    finally:
        for b in made:
            b.kill_all()
            print(b.logs())
            b.sessions.kw["bind"].dispose()


def wait_all(b: Backend, job_ids: list[str], timeout: float, what: str = "the jobs") -> None:
    """Wait until every job is terminal; on timeout, fail with the stragglers and the logs."""
    from store.models import Job

    deadline = time.monotonic() + timeout
    while True:
        with b.sessions() as s:
            open_ = s.scalars(sa.select(Job.id).where(Job.id.in_(job_ids))
                              .where(Job.status.not_in(TERMINAL))).all()
        if not open_:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: "
                                 f"{len(open_)} not finished, e.g. {open_[:5]}\n{b.logs()}")
        time.sleep(0.25)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: the shared one must never be restarted."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("WEIGHTSMITH_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, and WEIGHTSMITH_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The 1,000-job load run is `make load` (pytest -m load) only."""
    if "load" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="load run: `make load` (pytest -m load)")
    for item in items:
        if item.get_closest_marker("load") is not None:
            item.add_marker(skip)
