"""Fixtures for the worker: migrated databases, jobs, and real Celery worker processes.

`backend` runs a test twice: on the embedded set (SQLite file + kombu filesystem broker in
tmp_path) and on the production set (a fresh PostgreSQL database + its own Redis db). Worker
and beat processes start in their own process group and are SIGKILLed as a group at teardown,
whatever state the test left them in (even SIGSTOPped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Short lease and heartbeat so take-over and reconcile happen within seconds. The lease is
# still 8 heartbeats long: on a loaded 2-core machine a healthy worker can be starved for a
# few seconds, and a tighter lease would let a second worker take over a job that is fine.
FAST_ENV = {
    "WEIGHTSMITH_LEASE_TIMEOUT_S": "8",
    "WEIGHTSMITH_HEARTBEAT_INTERVAL_S": "1",
    "WEIGHTSMITH_MAX_ATTEMPTS": "3",
    "WEIGHTSMITH_RECONCILE_INTERVAL_S": "1",
    "WEIGHTSMITH_QUEUED_GRACE_S": "2",
    # The runner tests' clocks (0.25 s a reading) put commits a few epochs apart at 1 s.
    "WEIGHTSMITH_COMMIT_INTERVAL_S": "1",
}


@dataclass
class Backend:
    """One set of backends: its environment, settings, sessions and a Celery app to send with."""

    name: str
    env: dict[str, str]
    settings: Settings
    sessions: sessionmaker[Session]
    log_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _celery: Any = None

    @property
    def celery(self) -> Any:
        if self._celery is None:
            from worker.celery_app import make_celery

            self._celery = make_celery(self.settings)
        return self._celery

    def send(self, job_id: str) -> None:
        self.celery.send_task("weightsmith.train_job", args=[job_id])

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """A `celery -A worker.celery_app ...` process with this backend's environment."""
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed at teardown)
        argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args]
        proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(name, "worker", "--pool=prefork", "--concurrency=1",
                          "--loglevel=INFO", "--without-mingle", "--without-gossip",
                          "--without-heartbeat", f"--hostname={name}@%h")

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat", "beat", "--loglevel=INFO",
                          f"--schedule={self.log_dir / 'beat-schedule'}")

    def logs(self) -> str:
        return "\n".join(
            f"----- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def kill_all(self) -> None:
        for _, proc in self.procs:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                os.killpg(proc.pid, signal.SIGKILL)
        for _, proc in self.procs:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                proc.wait(timeout=10)


def make_backend(name: str, tmp_path: Path, database_url: str | None,
                 broker_url: str | None) -> Backend:
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade_to_head

    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSMITH_")}
    env.update(FAST_ENV, WEIGHTSMITH_DATA_DIR=str(tmp_path / "data"))
    if database_url:
        env["WEIGHTSMITH_DATABASE_URL"] = database_url
    if broker_url:
        env["WEIGHTSMITH_BROKER_URL"] = broker_url
    settings = Settings.from_env(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.database_url)
    engine = make_engine(settings.database_url)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    return Backend(name, env, settings, make_session_factory(engine), log_dir)


@contextlib.contextmanager
def running(b: Backend, *, show_logs: bool = False) -> Iterator[Backend]:
    """Yield `b`; afterwards stop its processes and close its engine."""
    try:
        yield b
    finally:
        b.kill_all()
        if show_logs:
            print(b.logs())  # pytest shows captured output only when the test fails
        b.sessions.kw["bind"].dispose()


@pytest.fixture(params=["embedded", "production"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        b = make_backend("embedded", tmp_path, None, None)
    else:
        b = make_backend("production", tmp_path, request.getfixturevalue("postgres_url"),
                         request.getfixturevalue("redis_url"))
    with running(b, show_logs=True):
        yield b


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    """The embedded set only, for in-process tests of the runner."""
    with running(make_backend("embedded", tmp_path, None, None)) as b:
        yield b


@pytest.fixture
def postgres_backend(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Backend]:
    """The production set only, for in-process tests of the runner on PostgreSQL."""
    with running(make_backend("production", tmp_path, postgres_url, redis_url)) as b:
        yield b


# -- jobs ------------------------------------------------------------------------------------


def xor_spec(epochs: int = 3, **training: Any) -> dict[str, Any]:
    return {
        "name": "xor-test",
        "dataset": "builtin:xor",
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                             {"type": "dense", "units": 2}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "learning_rate": 0.1},
        "training": {"epochs": epochs, "batch_size": 4, "validation_split": 0.25, **training},
        "checkpoints": {"every_epochs": 1, "keep_last": 2, "keep_best": 1,
                        "monitor": "val_loss"},
    }


def upload_xor(b: Backend, rows: int, name: str) -> str:
    """An uploaded dataset of `rows` xor-like rows (2 features, labels 0/1); its id."""
    import numpy as np

    from core.datasets import stored
    from store import datasets, tenants

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    with b.sessions.begin() as s:
        tenant = tenants.get_or_create(s, "test")
        return str(datasets.create(
            s, tenant.id, name=name, format="npz", n_rows=rows, x_shape=[rows, 2],
            y_shape=[rows], kind="classification", classes=[0, 1], sha256="0" * 64,
            size_bytes=stored.framed_size([X, y]), data=stored.frames([X, y])).id)


def create_job(b: Backend, spec: dict[str, Any], dataset_id: str | None = None, *,
               tenant: str = "test", cap: int | None = None) -> str:
    """A job submitted as the API submits one: the spec parsed and normalised by core.spec,
    stored by store.submissions.submit with its "queued" status event, within the tenant's
    quota (`cap`, default the settings' max_concurrent_jobs)."""
    from core.spec import Spec
    from store import submissions, tenants
    from store.statuses import status_event

    cap = b.settings.limits.max_concurrent_jobs if cap is None else cap
    with b.sessions.begin() as s:
        tenant_id = tenants.get_or_create(s, tenant).id
        made = submissions.submit(s, tenant_id, Spec.from_dict(spec).to_dict(), dataset_id,
                                  None, None, cap=cap, first_event=status_event("queued"))
        assert made.job is not None, "the test tenant's quota is full"
        return str(made.job["id"])


def cancel(s: Session, job_id: str) -> None:
    """Cancel as POST /cancel does (store.jobs.cancel), inside `s`."""
    from store import jobs

    jobs.cancel(s, _tenant_of(s, job_id), job_id)


def resume(s: Session, job_id: str, extra_epochs: int = 0) -> None:
    """Resume as POST /resume does (store.jobs.resume), inside `s`."""
    from store import jobs

    jobs.resume(s, _tenant_of(s, job_id), job_id, extra_epochs)


def _tenant_of(s: Session, job_id: str) -> str:
    from store.models import Job

    job = s.get(Job, job_id)
    assert job is not None
    return job.tenant_id


def job_row(b: Backend, job_id: str) -> Any:
    from store.models import Job

    with b.sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def wait_for(b: Backend, job_id: str, predicate: Callable[[Any], bool],
             timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = job_row(b, job_id)
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; job is {job.status} "
                f"epoch {job.epoch_done} attempts {job.attempts}\n{b.logs()}")
        time.sleep(0.1)


def metric_epochs(b: Backend, job_id: str) -> list[int]:
    from store.models import Metric

    with b.sessions() as s:
        return list(s.scalars(sa.select(Metric.epoch).where(Metric.job_id == job_id)
                              .where(Metric.name == "loss").order_by(Metric.epoch)))


def kept_checkpoints(b: Backend, job_id: str) -> list[tuple[str, int]]:
    from store import checkpoints

    with b.sessions() as s:
        return sorted((r.kind, r.epoch) for r in checkpoints.list_for_job(s, job_id))


def leases(b: Backend, job_id: str) -> list[tuple[int, str, str | None]]:
    from store import leases as store_leases

    with b.sessions() as s:
        return [(r.attempt, r.worker_id, r.outcome) for r in store_leases.history(s, job_id)]
