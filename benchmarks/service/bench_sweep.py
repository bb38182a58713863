"""Sweeps across real workers on PostgreSQL + Redis: scale-out and the controller's overhead.

Usage: ``.venv/bin/python benchmarks/service/bench_sweep.py [--rounds 2] [--quick]
[--trials 32] [--gaps 12]``

Issue 15, "Performance", two figures, each against a peer measured in the same run:

- **scale-out**: the same 32-trial sweep (random search over the digits MLP's learning rate,
  width and batch size, no scheduler, so every trial runs all its epochs and both runs do the
  same work; ``max_concurrent`` 4) with 2 ``weightsmith worker`` processes against 1, the two
  set-ups alternating round by round; wall time from the first ``sweep_step`` sent to the
  sweep's ``finished_at``. Target: 2 workers in at most 0.55x the time of 1.
- **controller overhead**: with one idle worker and ``max_concurrent`` 1, from a trial's end
  (its job's ``finished_at``, written with its final status) to the next trial's first epoch:
  the next job's claim (``started_at``) and the start of its first epoch (the epoch's commit
  time less its own ``seconds``; ``WEIGHTSMITH_COMMIT_INTERVAL_S=0.001`` commits every
  epoch at once). Target: median at most 100 ms. The peer is a plain job on the same worker:
  the commit that creates it to its claim (benchmarks/service/bench_dispatch_latency.py's
  figure), which is the floor any controller sits on.

Processes are the real commands (``python -m service.cli worker --concurrency 1``, one BLAS
thread each through ``--threads``); sweeps are stored with ``store.sweeps.create`` and their
first step sent through a ``make_celery`` app, as the API does after its commit. No beat
runs: a sweep that only reconcile could move would not finish, so each figure is the direct
path's. The machine's 1-minute load average is recorded next to every sample.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

BASE: dict[str, Any] = {
    "name": "bench-trial",
    "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "learning_rate": 0.001},
    "training": {"epochs": 8, "batch_size": 32, "validation_split": 0.2, "seed": 0},
    "checkpoints": {"every_epochs": 4, "keep_last": 1, "keep_best": 1,
                    "monitor": "val_accuracy"},
}
SPACE = {
    "optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
    "model.layers[0].units": {"choice": [32, 64, 128]},
    "training.batch_size": {"int_uniform": [16, 64]},
}


def sweep_body(trials: int, concurrent: int, epochs: int) -> dict[str, Any]:
    base = {**BASE, "training": {**BASE["training"], "epochs": epochs}}
    return {"name": "bench-sweep", "base": base, "space": SPACE,
            "search": {"method": "random", "seed": 11, "max_trials": trials,
                       "max_concurrent": concurrent},
            "scheduler": None}


def utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class Bench:
    """The scratch backends, a sender, and the worker processes of one set-up."""

    def __init__(self, db: str, broker: str, tmp: Path, args: Any) -> None:
        from config.settings import Settings
        from store.db import make_engine, make_session_factory
        from store.tenants import get_or_create
        from worker.celery_app import make_celery

        self.settings = Settings(data_dir=tmp, database_url=db, broker_url=broker)
        self.engine = make_engine(db)
        self.sessions = make_session_factory(self.engine)
        with self.sessions.begin() as s:
            self.tenant_id = str(get_or_create(s, "bench").id)
        self.celery = make_celery(self.settings)
        self.env = harness.service_env(tmp, db, broker, WEIGHTSMITH_MAX_CONCURRENT_JOBS="1000",
                                       WEIGHTSMITH_BLAS_THREADS=str(args.threads),
                                       WEIGHTSMITH_COMMIT_INTERVAL_S="0.001")
        self.started = 0

    def workers(self, count: int) -> Any:
        """`count` worker processes, each ready (its log says so) before the block runs."""
        import contextlib

        stack = contextlib.ExitStack()
        names: list[str] = []
        procs: list[Any] = []
        for _ in range(count):
            self.started += 1
            name = f"sweep-worker-{self.started}"
            argv = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1",
                    "--loglevel", "INFO"]
            procs.append(stack.enter_context(harness.child(argv, name, self.env)))
            names.append(name)
        deadline = time.monotonic() + 120
        while not all("ready." in (harness.LOGS / f"{n}.log").read_text(errors="replace")
                      for n in names):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                stack.close()
                raise RuntimeError(f"workers {names} not ready (see {harness.LOGS})")
            time.sleep(0.2)
        return stack

    def run_sweep(self, body: dict[str, Any], timeout: float = 1800.0) -> dict[str, Any]:
        """Store the sweep, send its first step, wait for its end; its rows."""
        from core.sweeps import SweepSpec
        from store import sweeps
        from store.models import Sweep
        from worker.celery_app import SWEEP_STEP_TASK

        spec = SweepSpec.from_dict(body, max_trials=1000, max_concurrent=8)
        with self.sessions.begin() as s:
            sweep, _ = sweeps.create(s, self.tenant_id, spec.to_dict(), name="bench",
                                     idempotency_key=None, request_hash=None,
                                     deadline_at=None)
            sweep_id = sweep.id
        sent = dt.datetime.now(dt.UTC)
        self.celery.send_task(SWEEP_STEP_TASK, args=[sweep_id])
        deadline = time.monotonic() + timeout
        while True:
            with self.sessions() as s:
                row = s.get(Sweep, sweep_id)
                assert row is not None
                if row.status not in ("queued", "running"):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} still {row.status} after {timeout} s")
            time.sleep(0.1)
        if row.status != "succeeded":
            raise RuntimeError(f"sweep {sweep_id} ended {row.status}")
        return {"id": sweep_id, "wall_s": (utc(row.finished_at) - sent).total_seconds()}

    def gaps(self, sweep_id: str) -> list[dict[str, float]]:
        """For each trial after the first (in claim order): its previous trial's end to
        its claim, and to the start of its first epoch, in ms."""
        import sqlalchemy as sa

        from store.models import Job, JobEvent, Metric

        with self.sessions() as s:
            jobs = list(s.scalars(sa.select(Job).where(Job.sweep_id == sweep_id)
                                  .order_by(Job.started_at)))
            out = []
            for prev, job in itertools.pairwise(jobs):
                first = s.scalar(sa.select(JobEvent.created_at).where(
                    JobEvent.job_id == job.id, JobEvent.type == "epoch")
                    .order_by(JobEvent.seq).limit(1))
                seconds = s.scalar(sa.select(Metric.value).where(
                    Metric.job_id == job.id, Metric.epoch == 1, Metric.name == "seconds"))
                end = utc(prev.finished_at)
                epoch_start = utc(first) - dt.timedelta(seconds=float(seconds or 0.0))
                out.append({"created_ms": (utc(job.created_at) - end).total_seconds() * 1e3,
                            "claim_ms": (utc(job.started_at) - end).total_seconds() * 1e3,
                            "first_epoch_ms": (epoch_start - end).total_seconds() * 1e3,
                            "load": harness.load()})
        return out

    def plain_job(self) -> float:
        """A plain job's commit-to-claim latency on the same worker, in ms (the peer)."""
        from core.spec import Spec
        from store import jobs
        from store.models import Job
        from store.statuses import TERMINAL_STATUSES

        spec = {**BASE, "training": {**BASE["training"], "epochs": 2}}
        with self.sessions.begin() as s:
            job_id = jobs.create_job(s, self.tenant_id, Spec.from_dict(spec).to_dict(), None).id
        committed = dt.datetime.now(dt.UTC)
        self.celery.send_task("weightsmith.train_job", args=[job_id])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.sessions() as s:
                job = s.get(Job, job_id)
                if job is not None and job.status in TERMINAL_STATUSES:
                    return (utc(job.started_at) - committed).total_seconds() * 1e3
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} did not end")


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--trials", type=int, default=32, help="trials of the scale-out sweep")
    p.add_argument("--gaps", type=int, default=12, help="trials of the overhead sweep")
    p.add_argument("--part", choices=("both", "overhead", "scale"), default="both")
    args = harness.parse(p)
    trials, epochs, rounds = (8, 3, 1) if args.quick else (args.trials, 8, args.rounds)
    print(f"load {harness.load()}", flush=True)
    scale: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    overhead: list[dict[str, float]] = []
    plain: list[dict[str, float]] = []
    with harness.scratch_postgres() as db, harness.private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix="ws-bench-sweep-") as tmp:
        bench = Bench(db, broker.url, Path(tmp), args)
        with bench.workers(1 if args.part != "scale" else 0):  # overhead: one idle worker
            if args.part != "scale":
                bench.run_sweep(sweep_body(2, 1, 2))  # warm-up: imports, pools, the dataset
            for r in range(rounds if args.part != "scale" else 0):
                done = bench.run_sweep(sweep_body(args.gaps, 1, 2))
                overhead += bench.gaps(done["id"])
                for _ in range(5):
                    time.sleep(0.3)  # the worker is idle, blocked on the broker
                    plain.append({"claim_ms": bench.plain_job(), "load": harness.load()})
                print(f"overhead round {r + 1}/{rounds}: end -> next claim median "
                      f"{harness.median([g['claim_ms'] for g in overhead]):.1f} ms, -> first "
                      f"epoch {harness.median([g['first_epoch_ms'] for g in overhead]):.1f} ms;"
                      f" load {harness.load()}", flush=True)
        for r in range(rounds if args.part != "overhead" else 0):
            for count in (1, 2) if r % 2 == 0 else (2, 1):
                with bench.workers(count):
                    bench.run_sweep(sweep_body(count, count, 1))  # warm-up of each child
                    load0 = harness.load()
                    done = bench.run_sweep(sweep_body(trials, 4, epochs))
                scale[count].append({"wall_s": done["wall_s"], "load_start": load0,
                                     "load_end": harness.load()})
                print(f"scale-out round {r + 1}/{rounds}, {count} worker(s): "
                      f"{done['wall_s']:.1f} s (load {load0} -> {harness.load()})", flush=True)
        bench.engine.dispose()
    report(scale, overhead, plain, trials, epochs)


def report(scale: dict[int, list[dict[str, float]]], overhead: list[dict[str, float]],
           plain: list[dict[str, float]], trials: int, epochs: int) -> None:
    summary: dict[str, Any] = {}
    if scale[1] and scale[2]:
        one = harness.median([r["wall_s"] for r in scale[1]])
        two = harness.median([r["wall_s"] for r in scale[2]])
        ratios = [b["wall_s"] / a["wall_s"] for a, b in zip(scale[1], scale[2], strict=True)]
        loads = [x for rows in scale.values() for r in rows
                 for x in (r["load_start"], r["load_end"])]
        harness.print_table(
            f"scale-out: {trials} trials x {epochs} epochs, PostgreSQL + Redis "
            f"(load {min(loads):.1f}-{max(loads):.1f})",
            ["workers", "rounds", "median s", "per round s"],
            [[n, len(scale[n]), harness.median([r["wall_s"] for r in scale[n]]),
              ", ".join(f"{r['wall_s']:.1f}" for r in scale[n])] for n in (1, 2)])
        print(f"  2 workers / 1 worker: {two / one:.3f}x (per round "
              f"{', '.join(f'{x:.3f}' for x in ratios)}); target <= 0.55x: "
              f"{harness.verdict(two / one <= 0.55)}")
        summary["scale_out"] = {"trials": trials, "epochs": epochs, "runs": scale,
                                "median_s": {"1": one, "2": two}, "ratio": two / one,
                                "ratios": ratios}
    if overhead:
        rows = []
        for label, values in (
                ("trial end -> next trial's job made (the step)",
                 [g["created_ms"] for g in overhead]),
                ("trial end -> next trial's claim", [g["claim_ms"] for g in overhead]),
                ("trial end -> next trial's first epoch", [g["first_epoch_ms"] for g in overhead]),
                ("peer: plain job commit -> claim", [g["claim_ms"] for g in plain])):
            rows.append([label, len(values), harness.median(values),
                         harness.percentile(values, 90), max(values)])
        first_epoch = harness.median([g["first_epoch_ms"] for g in overhead])
        loads = [g["load"] for g in overhead + plain]
        harness.print_table(
            f"controller overhead, one idle worker (load {min(loads):.1f}-{max(loads):.1f})",
            ["path", "n", "median ms", "p90 ms", "max ms"], rows)
        print(f"  median to the first epoch {first_epoch:.1f} ms; target <= 100 ms: "
              f"{harness.verdict(first_epoch <= 100)}")
        summary["overhead"] = {"gaps": overhead, "plain": plain,
                               "median_first_epoch_ms": first_epoch}
    harness.write_results("bench_sweep", summary)


if __name__ == "__main__":
    main()
