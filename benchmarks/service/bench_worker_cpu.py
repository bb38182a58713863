"""The worker's overhead by CPU accounting: what the wall clock on a noisy box cannot resolve.

Usage: ``.venv/bin/python benchmarks/service/bench_worker_cpu.py [--rounds 3] [--quick]
[--cases digits,mlp784]`` (``WS_DIGITS_EPOCHS=n`` as for bench_worker.py)

Issue 3 asks the worker to keep >= 0.95x the bare core's epoch throughput. On a shared 2-core
machine the bare core's own speed moves by tens of percent from one run to the next
(benchmarks/service/README.md), so ``bench_worker.py``'s wall-clock ratios cannot tell 3% from
6%. This script runs the worker's code path (``worker.runner.JobRunner`` on PostgreSQL, on
bench_worker's cases: a checkpoint every epoch) in this process and counts, with each
thread's own CPU clock (``time.thread_time``), what the worker adds to training:

- ``on_epoch``: the runner's per-epoch callback on the training thread (buffering the epoch,
  copying the state of the checkpoints its policy keeps);
- ``polls``: the cancel/lease reads ``should_stop`` makes between batches (its per-batch
  comparison is left out: timing 51,000 calls would cost more than they do);
- ``commit thread``: the once-a-second transactions of metrics, events, progress and
  checkpoints. It runs beside training, so its CPU is an upper bound on the training time it
  takes (it holds the GIL the training thread wants; BLAS calls release it).

Each is reported as a share of the core's own CPU on the training thread (the thread's total
minus the two callbacks). All are ratios of CPU times measured in the same run, which the
machine's speed moves alike.
"""

from __future__ import annotations

import collections
import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import harness
from bench_worker import Case, timed


@contextmanager
def thread_cpu_of(cls: Any, names: list[str], spent: collections.Counter[str]) -> Iterator[None]:
    """Add each call's thread CPU to spent[name] while inside the block."""
    originals = {name: getattr(cls, name) for name in names}

    def wrapped(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - started
        return call

    for name, original in originals.items():
        setattr(cls, name, wrapped(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def one_run(case: Case, sessions: Any, settings: Any, tenant_id: str,
            dataset_id: str | None) -> dict[str, float]:
    from worker.runner import JobRunner

    spent: collections.Counter[str] = collections.Counter()
    job_id = case.create_job(sessions, tenant_id, dataset_id)
    stamps: list[float] = []
    train = timed(stamps)

    def train_counted(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return train(*args, **kwargs)
        finally:
            spent["training thread"] += time.thread_time() - started

    with thread_cpu_of(JobRunner, ["on_epoch", "_poll", "_commit"], spent):
        outcome = JobRunner(sessions, settings, job_id, "bench:cpu",
                            train_fn=train_counted).run()
    if outcome != "succeeded":
        raise RuntimeError(f"job {job_id}: {outcome}")
    core = spent["training thread"] - spent["on_epoch"] - spent["_poll"]
    shares = {"on_epoch": spent["on_epoch"] / core, "polls": spent["_poll"] / core,
              "commit thread": spent["_commit"] / core}
    return {**{k: 100 * v for k, v in shares.items()}, "total": 100 * sum(shares.values()),
            "core_cpu_s": core}


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--cases", default="digits,mlp784")
    args = harness.parse(p)
    from config.settings import Settings
    from store.db import make_engine, make_session_factory
    from store.tenants import get_or_create

    keys = ["on_epoch", "polls", "commit thread", "total"]
    results: dict[str, list[dict[str, float]]] = {}
    table = []
    with harness.scratch_postgres() as db, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=db)
        engine = make_engine(db)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            tenant_id = str(get_or_create(s, "bench").id)
        for name in args.cases.split(","):
            case = Case(name, args.quick)
            dataset_id = case.store_dataset(sessions, tenant_id)
            gc.collect()
            gc.freeze()  # as the worker's pool children do (worker/celery_app.py)
            rows = results.setdefault(name, [])
            for r in range(args.rounds):
                row = one_run(case, sessions, settings, tenant_id, dataset_id)
                rows.append(row)
                print(f"{name} round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{k} {row[k]:.2f}%" for k in keys)
                    + f" of the core's {row['core_cpu_s']:.1f} s; load {harness.load()}",
                    flush=True)
            medians = {k: harness.median([r[k] for r in rows]) for k in keys}
            expected = 1 / (1 + medians["total"] / 100)
            table.append([f"{name} x {case.epochs} epochs", *(f"{medians[k]:.2f}" for k in keys),
                          expected, ">=0.95x", harness.verdict(expected >= 0.95)])
        engine.dispose()
    harness.print_table(
        f"worker CPU on top of the core's (% of the core's CPU), PostgreSQL; medians of "
        f"{args.rounds} rounds", ["case", *keys, "expected ratio", "target", "verdict"], table)
    harness.write_results("bench_worker_cpu", {"rounds": results})


if __name__ == "__main__":
    main()
