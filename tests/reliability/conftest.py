"""Fixtures for the fault and load tests: production backends (PostgreSQL + Redis) with real
worker, beat and API processes, a private redis-server that may be restarted, and the
uninterrupted reference run a faulted job must match bit for bit.

The worker processes come from tests/worker/conftest.py (`make_backend`, `Backend`): the same
short lease (3 s), heartbeat (1 s) and reconcile interval (1 s), so take-overs happen in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from tests.worker.conftest import ROOT, Backend, make_backend

TERMINAL = ("succeeded", "failed", "cancelled")
# Keys of the checkpoint's __state__ JSON that differ between runs by nature (wall clock).
VOLATILE_METRICS = ("seconds",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


# -- the reference run and the comparison -----------------------------------------------------


def builtin_arrays(spec: dict[str, Any]) -> tuple[Any, Any]:
    from core.datasets import load_builtin

    data = load_builtin(str(spec["dataset"]).removeprefix("builtin:"))
    return data.X, data.y


def reference_checkpoint(spec: dict[str, Any]) -> bytes:
    """The final checkpoint of an uninterrupted in-process core.train of `spec`."""
    from core import train

    X, y = builtin_arrays(spec)
    return bytes(train(spec, X, y).checkpoint())


def npz_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def comparable_state(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The __state__ JSON without wall-clock seconds: what two equal runs must share."""
    state = json.loads(str(arrays["__state__"]))
    state["history"] = [{k: v for k, v in row.items() if k not in VOLATILE_METRICS}
                        for row in state["history"]]
    return dict(state)


def assert_bit_identical(got: bytes, want: bytes) -> int:
    """Every array (weights, optimizer moments, preprocessing) equal byte for byte, and the
    resume state (epoch, RNG states, history but seconds) equal; the number of arrays checked."""
    a, b = npz_arrays(got), npz_arrays(want)
    assert sorted(a) == sorted(b)
    arrays = [name for name in a if name != "__state__"]
    for name in arrays:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs"
    assert comparable_state(a) == comparable_state(b)
    return len(arrays)


def final_checkpoint_blob(b: Backend, job_id: str) -> bytes:
    from store import checkpoints

    with b.sessions() as s:
        finals = [r for r in checkpoints.list_for_job(s, job_id) if r.kind == "final"]
        assert len(finals) == 1, finals
        blob = checkpoints.get_blob(s, finals[0].id)
    assert blob is not None
    return bytes(blob)


def assert_checkpoints_sound(b: Backend, job_id: str) -> list[tuple[str, int]]:
    """Every kept checkpoint's blob matches its sha256 and size and loads with core; their
    (kind, epoch) list."""
    from core.checkpoint import load_checkpoint, load_state
    from store import checkpoints

    seen = []
    with b.sessions() as s:
        for row in checkpoints.list_for_job(s, job_id):
            blob = checkpoints.get_blob(s, row.id)
            assert blob is not None, row.id
            assert hashlib.sha256(blob).hexdigest() == row.sha256, row.id
            assert len(blob) == row.size_bytes, row.id
            assert load_state(bytes(blob)).epoch == row.epoch, row.id
            load_checkpoint(bytes(blob))
            seen.append((str(row.kind), int(row.epoch)))
    return sorted(seen)


def metric_rows(b: Backend, job_id: str) -> list[tuple[int, str, float | None]]:
    from store.models import Metric

    with b.sessions() as s:
        rows = s.execute(sa.select(Metric.epoch, Metric.name, Metric.value)
                         .where(Metric.job_id == job_id)
                         .order_by(Metric.epoch, Metric.name))
        return [(int(r.epoch), str(r.name), r.value) for r in rows]


def assert_metrics_match(b: Backend, job_id: str, reference: bytes) -> int:
    """Exactly one row per (epoch, name), and each value equal to the reference run's; the
    number of rows."""
    history = comparable_state(npz_arrays(reference))["history"]
    rows = metric_rows(b, job_id)
    keys = [(epoch, name) for epoch, name, _ in rows]
    assert len(keys) == len(set(keys))
    want = {(i, name): value for i, row in enumerate(history, 1) for name, value in row.items()}
    got = {(e, n): v for e, n, v in rows if n not in VOLATILE_METRICS}
    assert got == want
    return len(rows)


# -- processes of our own: a redis-server and the API -----------------------------------------


class RedisServer:
    """A private redis-server (append-only, no RDB) in a tmp dir, restartable on its port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait(lambda: self.ping(), "to answer PING")

    def ping(self) -> bool:
        import redis

        try:
            with contextlib.closing(redis.Redis.from_url(self.url, socket_timeout=1)) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.proc = None

    def wipe(self) -> None:
        """Delete the stopped server's append-only files: it comes back empty."""
        assert self.proc is None
        for path in self.dir.glob("appendonly*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _wait(self, ok: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on {self.port} did not {what}")
            time.sleep(0.1)


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


class ApiProcess:
    """`weightsmith api` (gunicorn) on a fixed port, killed and restarted by the test."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        log = open(self.log_dir / f"api-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "api", "--port", str(self.port),
             "--workers", "1", "--threads", "4"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"weightsmith api exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("weightsmith api did not answer /healthz in time")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL gunicorn's master and workers at once (a crashed host, no graceful exit)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.proc = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The 1,000-job load run is `make load` (pytest -m load) only."""
    if "load" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="load run: `make load` (pytest -m load)")
    for item in items:
        if item.get_closest_marker("load") is not None:
            item.add_marker(skip)
