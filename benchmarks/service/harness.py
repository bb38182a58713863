"""What the service benchmarks share: scratch backends, child processes, statistics, output.

Every script here measures the product as it runs in production (PostgreSQL + Redis,
`weightsmith api` under gunicorn, `celery worker` processes), so each one needs backends of
its own that nobody else's test can touch: a fresh PostgreSQL database (dropped afterwards)
and a private `redis-server` on a free port (append-only, as compose runs it), rather than a
shared Redis db number that the test suite's fixtures pick at random.

Children are started in their own session and stopped by their process group id, never by
name. Figures are medians over rounds; the machine's load average is recorded next to each
(a 2-core box shared with other test runs), which is why the targets read best as ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
LOGS = RESULTS / "logs"
POSTGRES_SERVER = os.environ.get(
    "WEIGHTSMITH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.threads import pin_threads  # noqa: E402 (the repository is on the path first)
from service.supervisor import GRACE_S  # noqa: E402

# -- arguments and environment -----------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every script takes (run_all.py passes the same ones to all of them)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smaller and shorter, for a smoke run")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/OpenMP threads of every process (default 1: the steady view "
                        "on a shared 2-core machine)")
    p.add_argument("--only", default="", help="(bench_core's option; ignored here)")
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse known options, then re-execute once with the thread pins in the environment
    (benchmarks/threads.py), as bench_core.py does, so the figures compare with its own."""
    args, _ = p.parse_known_args()
    pin_threads(args.threads)
    return args


def load() -> float:
    """The 1-minute load average (2 cores here: above 2 means someone waits)."""
    return round(os.getloadavg()[0], 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# -- scratch backends --------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head; dropped (forcibly) afterwards."""
    import sqlalchemy as sa

    from store.migrate import upgrade_to_head

    name = f"ws_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_SERVER).set(database=name).render_as_string(
        hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int


@contextlib.contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of our own on a free port, configured as docker-compose.yml runs it."""
    with tempfile.TemporaryDirectory(prefix="ws-bench-redis-") as tmp:
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""]
        with child(argv, "redis") as proc:
            wait_port(port)
            yield RedisServer(f"redis://127.0.0.1:{port}/0", proc.pid)


@contextlib.contextmanager
def app_in_process(name: str, **env: str) -> Iterator[tuple[Any, str]]:
    """(the API's Flask app, an API key) on a scratch database and a private Redis, with the
    service environment plus `env`: for benchmarks that drive the app by its test client."""
    with scratch_postgres() as db, private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix=f"ws-{name}-") as tmp:
        os.environ.update(service_env(Path(tmp), db, broker.url, **env))
        from config.settings import Settings
        from service.app import create_app

        app = create_app(Settings.from_env())
        try:
            yield app, create_key(app.extensions["weightsmith"].session_factory)
        finally:
            app.extensions["weightsmith"].engine.dispose()


def create_key(sessions: Any, tenant: str = "bench") -> str:
    from store.tenants import create_api_key, get_or_create

    with sessions.begin() as s:
        return str(create_api_key(s, get_or_create(s, tenant).id))


def service_env(data_dir: Path, database_url: str, broker_url: str,
                **extra: str) -> dict[str, str]:
    """The environment a `weightsmith` process of the benchmark runs with."""
    env = dict(os.environ, WEIGHTSMITH_DATA_DIR=str(data_dir),
               WEIGHTSMITH_DATABASE_URL=database_url, WEIGHTSMITH_BROKER_URL=broker_url,
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


# -- child processes ---------------------------------------------------------------------------


@contextlib.contextmanager
def child(argv: Sequence[str], name: str, env: dict[str, str] | None = None,
          cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own session (output to results/logs/NAME.log); stop its group after."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = GRACE_S + 5.0) -> None:
    """SIGTERM the child's process group (gunicorn and Celery stop their own children).

    The grace outlasts `weightsmith serve`'s own (service.supervisor.GRACE_S): killed sooner,
    the supervisor could not kill its children's groups, and a worker in its warm shutdown
    went on training the benchmark's long job after the benchmark ended."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- statistics and output ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def cpu_batches(call: Callable[[], None], calls: int, batches: int = 7) -> list[float]:
    """Milliseconds of this process's CPU per `call`, for each of `batches` batches of `calls`
    (the in-process benchmarks take their median)."""
    per_call = []
    for _ in range(batches):
        started = time.process_time()
        for _ in range(calls):
            call()
        per_call.append(1000 * (time.process_time() - started) / calls)
    return per_call


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A fixed-width table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[fmt(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def write_results(name: str, summary: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return path


# -- CPU accounting ----------------------------------------------------------------------------
#
# On a shared machine the wall-clock rate depends on what others run; the CPU each request
# costs does not (much). Reading it per component says where a request's time goes and how
# many requests two idle cores could serve.

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2:].split()


def cpu_of_group(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in process group `pgid`."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:  # fields[2] is pgrp
            total += (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime
    return total


def cpu_of_pids(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) * TICK_S
    return total


def postgres_backends(database_url: str) -> list[int]:
    """Server process ids of the connections open to this benchmark's database."""
    import sqlalchemy as sa

    name = sa.engine.make_url(database_url).database
    admin = sa.create_engine(POSTGRES_SERVER)
    try:
        with admin.connect() as conn:
            rows = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                                {"d": name})
            return [int(r[0]) for r in rows]
    finally:
        admin.dispose()


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    return {pid: cpu_of_pids([pid]) for pid in pids}


class CpuMeter:
    """CPU seconds spent by named process groups and PostgreSQL backends between two reads.

    PostgreSQL backends are counted per process id: those alive at the end contribute their
    CPU since the start (all of it when they connected later); a pooled overflow connection
    that closed in between is missed, so the PostgreSQL figure is a lower bound.
    """

    def __init__(self, groups: dict[str, int], database_url: str | None = None) -> None:
        self.groups = groups
        self.database_url = database_url
        self._start: dict[str, float] = {}
        self._pg_start: dict[int, float] = {}

    def start(self) -> None:
        if self.database_url is not None:
            self._pg_start = cpu_by_pid(postgres_backends(self.database_url))
        self._start = {name: cpu_of_group(pgid) for name, pgid in self.groups.items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds per component since start()."""
        out = {name: cpu_of_group(pgid) - self._start[name]
               for name, pgid in self.groups.items()}
        if self.database_url is not None:
            end = cpu_by_pid(postgres_backends(self.database_url))
            out["postgres"] = sum(max(0.0, cpu - self._pg_start.get(pid, 0.0))
                                  for pid, cpu in end.items())
        return {k: round(v, 3) for k, v in out.items()}
