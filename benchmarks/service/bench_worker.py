"""Training through the worker against the bare core, alternately, in one run.

Usage: ``.venv/bin/python benchmarks/service/bench_worker.py [--rounds 3] [--quick]
[--cases digits,mlp784]`` (``WS_DIGITS_EPOCHS=n`` shortens the digits case for a quick look)

Issue 3, "Performance": training through the worker, storing metrics and a checkpoint every
epoch (policy ``every_epochs: 1``, keep_last 3, keep_best 1), keeps **>= 0.95x** the bare
core's epoch throughput. Cases:

- digits: the MLP of examples/digits_mlp.json (64-128-10 with dropout, Adam, batch 32,
  validation split 0.1, standardised inputs), 1,000 epochs of the 1,797 builtin rows (a few
  seconds, so that the worker's once-a-second commits reach a steady state);
- mlp784: 784-256-128-10, batch 128, Adam, float32, 60,000 random rows (an uploaded dataset
  of 188 MB), 8 epochs.

Each round runs, in turn:

- ``bare``: ``core.training.train`` in this process (the runner's peer);
- ``runner``: the worker code path in this process, ``worker.runner.JobRunner`` on SQLite
  (claim, dataset load, metrics/events/progress/checkpoints committed as the worker commits
  them, final checkpoint and status);
- ``process``: a real ``weightsmith worker`` (Celery prefork) on PostgreSQL + Redis, the job
  created in the store and sent with ``send_task``;
- ``bare_process``: ``core.training.train`` in a fresh process (the worker process's peer:
  a long-lived benchmark process trains measurably slower than a fresh one here).

Epoch throughput is measured in the steady state, the same way for all four: from the end of
epoch ``first`` (a tenth of the epochs, at least 1, is warm-up) to the end of the last epoch,
where "end" is a timestamp right after the epoch's ``on_epoch`` callback returned (bare,
runner) or the ``created_at`` of the epoch's event, which the worker stamps when the epoch
ended (process). The commits, heartbeats and checkpoint serialisation done while training are
inside that window; what a job does once before and after its epochs (claim, dataset load, the
final checkpoint and status) is not, and shows in the whole-job times reported beside it. The
verdict uses the median of the per-round ratios (each worker run against the bare run of its
own round): this box's speed drifts by tens of percent within minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness
import numpy as np

CASES: dict[str, dict[str, Any]] = {
    "digits": {"epochs": int(os.environ.get("WS_DIGITS_EPOCHS", 1000)), "quick_epochs": 300,
               "spec": {
        "name": "digits-mlp", "dataset": "builtin:digits",
        "model": {"layers": [
            {"type": "dense", "units": 128, "activation": "relu", "weight_init": "he_normal"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"batch_size": 32, "validation_split": 0.1, "standardize": True,
                     "seed": 0},
        "checkpoints": {"every_epochs": 1, "keep_last": 3, "keep_best": 1}}},
    "mlp784": {"epochs": 8, "quick_epochs": 4, "rows": 60000, "quick_rows": 12000, "spec": {
        "name": "mlp-784", "dataset": "ds_replaced_by_the_uploaded_id",
        "model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"},
                             {"type": "dense", "units": 128, "activation": "relu"},
                             {"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"batch_size": 128, "validation_split": 0.0, "standardize": False,
                     "dtype": "float32", "seed": 0},
        "checkpoints": {"every_epochs": 1, "keep_last": 3, "keep_best": 1}}},
}


WARMUP_FRACTION = 10  # the first tenth of the epochs is left out of the steady window


class Case:
    """One workload: its spec, its arrays, and the dataset row each store needs."""

    def __init__(self, name: str, quick: bool) -> None:
        conf = CASES[name]
        self.name = name
        self.epochs = int(conf["quick_epochs" if quick else "epochs"])
        spec = {**conf["spec"], "training": {**conf["spec"]["training"],
                                             "epochs": self.epochs}}
        if name == "digits":
            from core.datasets import load_builtin

            data = load_builtin("digits")
            self.X, self.y = data.X, data.y
            self.blob = None
        else:
            rows = int(conf["quick_rows" if quick else "rows"])
            rng = np.random.default_rng(0)
            self.X = rng.standard_normal((rows, 784), dtype=np.float32)
            self.y = rng.integers(0, 10, rows)
            buf = io.BytesIO()
            np.savez(buf, X=self.X, y=self.y)
            self.blob = buf.getvalue()
        self.spec = spec

    def job_spec(self, dataset_id: str | None) -> dict[str, Any]:
        from core.spec import Spec

        spec = dict(self.spec)
        if dataset_id is not None:
            spec["dataset"] = dataset_id
        return Spec.from_dict(spec).to_dict()

    def create_job(self, sessions: Any, tenant_id: str, dataset_id: str | None) -> str:
        from store import jobs

        spec = self.job_spec(dataset_id)
        with sessions.begin() as s:
            return str(jobs.create_job(s, tenant_id, spec, dataset_id).id)

    def store_dataset(self, sessions: Any, tenant_id: str) -> str | None:
        """The uploaded-dataset row for the random case (None: the builtin digits)."""
        from store import datasets

        if self.blob is None:
            return None
        with sessions.begin() as s:
            row = datasets.create(
                s, tenant_id, name=f"bench-{self.name}", format="npz",
                n_rows=int(self.X.shape[0]), x_shape=list(self.X.shape),
                y_shape=list(self.y.shape), kind="classification", classes=list(range(10)),
                sha256=hashlib.sha256(self.blob).hexdigest(), size_bytes=len(self.blob),
                blob=self.blob)
            return str(row.id)


def warmup_epochs(epochs: int) -> int:
    return max(1, epochs // WARMUP_FRACTION)


def steady(stamps: list[float], first: int) -> float:
    """Epochs per second from the end of epoch `first` to the end of the last (stamps[i] is
    the end of epoch i + 1)."""
    if len(stamps) <= first:
        return 0.0
    return (len(stamps) - first) / (stamps[-1] - stamps[first - 1])


def timed(stamps: list[float]) -> Callable[..., Any]:
    """A train function that records the time after each epoch's callback returns."""
    from core.training import train

    def run(spec: Any, X: Any, y: Any, *, on_epoch: Any = None, **kwargs: Any) -> Any:
        def stamped(report: Any) -> None:
            if on_epoch is not None:
                on_epoch(report)
            stamps.append(time.perf_counter())

        return train(spec, X, y, on_epoch=stamped, **kwargs)

    return run


def run_bare(case: Case) -> dict[str, Any]:
    """core.train in this process."""
    stamps: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    timed(stamps)(case.job_spec(None), case.X, case.y)
    end = time.perf_counter()
    return {"epochs_per_s": steady(stamps, warmup_epochs(case.epochs)), "job_s": end - started,
            "cpu_s": time.process_time() - cpu, "stamps": stamps}


def run_bare_process(case: Case, quick: bool) -> dict[str, Any]:
    """core.train in a fresh process of its own, as the worker's is (same interpreter,
    environment and thread pins)."""
    cmd = [sys.executable, __file__, "--bare-child", case.name, *(["--quick"] if quick else [])]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    stamps = res["stamps"]
    return {"epochs_per_s": steady(stamps, warmup_epochs(case.epochs)), "job_s": res["job_s"],
            "cpu_s": res["cpu_s"]}


def run_runner(case: Case, sessions: Any, settings: Any, tenant_id: str,
               dataset_id: str | None) -> dict[str, float]:
    from worker.runner import JobRunner

    job_id = case.create_job(sessions, tenant_id, dataset_id)
    stamps: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    outcome = JobRunner(sessions, settings, job_id, "bench:runner",
                        train_fn=timed(stamps)).run()
    end, cpu = time.perf_counter(), time.process_time() - cpu
    if outcome != "succeeded":
        raise RuntimeError(f"runner job {job_id}: {outcome}")
    check_stored(sessions, job_id, case.epochs)
    return {"epochs_per_s": steady(stamps, warmup_epochs(case.epochs)), "job_s": end - started,
            "cpu_s": cpu}


def run_process(case: Case, sessions: Any, celery: Any, tenant_id: str,
                dataset_id: str | None, meter: Any) -> dict[str, float]:
    import sqlalchemy as sa

    from store.models import Job, JobEvent
    from store.statuses import TERMINAL_STATUSES

    job_id = case.create_job(sessions, tenant_id, dataset_id)
    meter.start()
    celery.send_task("weightsmith.train_job", args=[job_id])
    deadline = time.monotonic() + 600
    while True:
        with sessions() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.status in TERMINAL_STATUSES:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not finish")
        time.sleep(0.2)
    cpu = meter.stop()
    if job.status != "succeeded":
        raise RuntimeError(f"worker job {job_id}: {job.status} {job.failure_reason}")
    with sessions() as s:
        rows = s.execute(sa.select(JobEvent.created_at, JobEvent.data)
                         .where(JobEvent.job_id == job_id, JobEvent.type == "epoch")
                         .order_by(JobEvent.seq)).all()
    check_stored(sessions, job_id, case.epochs)
    # The worker stamps each epoch event with the time the epoch ended.
    stamps = [r.created_at.timestamp() for r in rows]
    assert job.finished_at is not None and job.started_at is not None
    return {"epochs_per_s": steady(stamps, warmup_epochs(case.epochs)),
            "job_s": (job.finished_at - job.started_at).total_seconds(),
            "cpu_s": cpu["worker"], "postgres_cpu_s": cpu["postgres"]}


def check_stored(sessions: Any, job_id: str, epochs: int) -> None:
    """The worker really stored what it should: one metrics row set per epoch, checkpoints."""
    import sqlalchemy as sa

    from store.models import Checkpoint, Metric

    with sessions() as s:
        stored = s.scalar(sa.select(sa.func.count(sa.distinct(Metric.epoch)))
                          .where(Metric.job_id == job_id))
        kinds = sorted(s.scalars(sa.select(Checkpoint.kind)
                                 .where(Checkpoint.job_id == job_id)))
    if stored != epochs or "final" not in kinds or kinds.count("periodic") != min(3, epochs):
        raise RuntimeError(f"job {job_id}: metrics for {stored} of {epochs} epochs, "
                           f"checkpoints {kinds}")


@contextlib.contextmanager
def backends(tmp: Path, threads: int,
             commit_interval_s: float) -> Iterator[dict[str, Any]]:
    """SQLite (for the in-process runner) and PostgreSQL + Redis + a worker process, both
    committing every `commit_interval_s` (WEIGHTSMITH_COMMIT_INTERVAL_S)."""
    from config.settings import Settings
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade_to_head
    from store.tenants import get_or_create
    from worker.celery_app import make_celery

    sqlite = Settings(data_dir=tmp / "embedded", commit_interval_s=commit_interval_s)
    sqlite.data_dir.mkdir(parents=True)
    upgrade_to_head(sqlite.database_url)
    with harness.scratch_postgres() as db, harness.private_redis() as broker:
        prod = Settings(data_dir=tmp / "prod", database_url=db, broker_url=broker.url)
        prod.data_dir.mkdir(parents=True)
        engines = [make_engine(sqlite.database_url), make_engine(db)]
        out: dict[str, Any] = {"sqlite_settings": sqlite,
                               "sqlite": make_session_factory(engines[0]),
                               "postgres": make_session_factory(engines[1]),
                               "celery": make_celery(prod)}
        for name in ("sqlite", "postgres"):
            with out[name].begin() as s:
                out[f"{name}_tenant"] = str(get_or_create(s, "bench").id)
        # The worker sizes BLAS per pool process itself (worker/blas.py); pin it to the
        # bare runs' threads so both sides multiply matrices alike.
        env = harness.service_env(prod.data_dir, db, broker.url,
                                  WEIGHTSMITH_BLAS_THREADS=str(threads),
                                  WEIGHTSMITH_COMMIT_INTERVAL_S=str(commit_interval_s))
        argv = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1",
                "--loglevel", "WARNING"]
        try:
            with harness.child(argv, "worker-throughput", env) as proc:
                # The worker's CPU (Celery's main process and its pool child) and that of
                # the scratch database's backends, per job: steadier than wall time here.
                out["meter"] = harness.CpuMeter({"worker": proc.pid}, db)
                yield out
        finally:
            for engine in engines:
                engine.dispose()


def freeze_heap() -> None:
    """Leave what this process holds so far out of garbage collection, as the worker's pool
    children do (worker/celery_app.py): otherwise the in-process runs pay full collections
    over this script's heap (the runner's allocations set off more of them than the bare
    core's), a cost the worker process does not have."""
    gc.collect()
    gc.freeze()


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--cases", default="digits,mlp784")
    from config.settings import DEFAULT_COMMIT_INTERVAL_S

    p.add_argument("--commit-interval", type=float, default=DEFAULT_COMMIT_INTERVAL_S,
                   help="the worker's WEIGHTSMITH_COMMIT_INTERVAL_S (default: as shipped)")
    p.add_argument("--bare-child", default=None, help=argparse.SUPPRESS)
    args = harness.parse(p)
    if args.bare_child:
        case = Case(args.bare_child, args.quick)
        freeze_heap()
        res = run_bare(case)
        print(json.dumps({"stamps": res["stamps"], "job_s": res["job_s"], "cpu_s": res["cpu_s"]}))
        return
    print(f"load {harness.load()}; BLAS threads {args.threads}; commits every "
          f"{args.commit_interval:g} s", flush=True)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ws-bench-worker-") as tmp, \
            backends(Path(tmp), args.threads, args.commit_interval) as b:
        for name in args.cases.split(","):
            case = Case(name, args.quick)
            ds = {store: case.store_dataset(b[store], b[f"{store}_tenant"])
                  for store in ("sqlite", "postgres")}
            freeze_heap()
            # Warm-up: the worker process's first job imports the core and opens its pools.
            run_process(case, b["postgres"], b["celery"], b["postgres_tenant"], ds["postgres"],
                        b["meter"])
            for r in range(args.rounds):
                print(f"{name} round {r + 1}/{args.rounds} ({case.epochs} epochs)", flush=True)
                for variant in ("bare", "runner", "process", "bare_process"):
                    if variant == "bare":
                        res = run_bare(case)
                        del res["stamps"]
                    elif variant == "runner":
                        res = run_runner(case, b["sqlite"], b["sqlite_settings"],
                                         b["sqlite_tenant"], ds["sqlite"])
                    elif variant == "process":
                        res = run_process(case, b["postgres"], b["celery"],
                                          b["postgres_tenant"], ds["postgres"], b["meter"])
                    else:
                        res = run_bare_process(case, args.quick)
                    res["load"] = harness.load()
                    results.setdefault(name, {}).setdefault(variant, []).append(res)
                    print(f"  {variant:<12} {res['epochs_per_s']:8.2f} epochs/s  whole job "
                          f"{res['job_s']:6.2f} s  CPU {res['cpu_s']:6.2f} s  load "
                          f"{res['load']}", flush=True)
    report(results, args.rounds, args.commit_interval)


def report(results: dict[str, dict[str, list[dict[str, float]]]], rounds: int,
           commit_interval_s: float) -> None:
    rows = []
    summary: dict[str, Any] = {"rounds": rounds, "commit_interval_s": commit_interval_s,
                               "runs": results}
    for name, variants in results.items():
        for variant, peer in (("runner", "bare"), ("process", "bare_process")):
            # The in-process runner against core.train in the same process; the worker
            # process against core.train in a fresh process, over the same epochs.
            bare = harness.median([r["epochs_per_s"] for r in variants[peer]])
            rate = harness.median([r["epochs_per_s"] for r in variants[variant]])
            # Per-round ratios against the bare run of the same round: steadier when busy.
            per_round = [w["epochs_per_s"] / b["epochs_per_s"]
                         for w, b in zip(variants[variant], variants[peer], strict=True)]
            ratio = harness.median(per_round)
            # Whole-job CPU, bare over worker (its own process only; the database's CPU is
            # in the JSON): load-independent, but it includes the dataset load.
            cpu_ratio = harness.median([r["cpu_s"] for r in variants[peer]]) / harness.median(
                [r["cpu_s"] for r in variants[variant]])
            summary[f"{name}.{variant}"] = {"ratio": ratio, "ratio_of_medians": rate / bare,
                                            "per_round": per_round,
                                            "cpu_ratio": cpu_ratio}
            where = "SQLite, in-process" if variant == "runner" else "PostgreSQL+Redis, process"
            rows.append([f"{name} {where}", bare, rate, rate / bare, ratio,
                         ", ".join(f"{x:.2f}" for x in per_round), cpu_ratio,
                         harness.median([r["job_s"] for r in variants[variant]]),
                         harness.median([r["job_s"] for r in variants[peer]]),
                         ">=0.95x", harness.verdict(ratio >= 0.95)])
    harness.print_table(
        f"epoch throughput through the worker vs bare core.train; medians of {rounds} rounds",
        ["case", "bare ep/s", "worker ep/s", "of medians", "per-round median", "per round",
         "CPU ratio", "worker job s",
         "bare job s", "target", "verdict"], rows)
    harness.write_results("bench_worker", summary)


if __name__ == "__main__":
    main()
