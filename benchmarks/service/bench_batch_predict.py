"""Batch predictions of the digits MLP against the core's own forward pass on the same rows.

Usage: ``.venv/bin/python benchmarks/service/bench_batch_predict.py [--rows 1000000]
[--rounds 3]``

The digits rows are tiled to ``--rows`` rows (64 float64 features each) and stored as an
uploaded dataset in a SQLite database in a temporary folder; a 64-32-10 MLP is trained for
one epoch by ``core.train``. Each round, alternately:

- ``forward``: ``network.predict(X)`` over all the rows in this process (the core's own pass);
- ``batch``: a fresh process runs the worker's scorer (``worker.batch_scoring.score``, the
  body of the ``weightsmith.score_batch`` task, without the broker) from claim to final
  commit: loading the network and the dataset, every chunk scored and committed. Its peak
  RSS (the child's VmHWM) is compared with the dataset's X in bytes.

The figures are medians over rounds, printed with the ratio batch/forward of rows per second
(the issue's target: >= 0.8) and peak RSS / X bytes (target: < 2); each round's figures, the
CPU seconds of both sides (the batch's include its read-ahead thread) and the load average
are printed too, since on a shared machine the wall clock moves with the neighbours.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SPEC: dict[str, Any] = {
    "name": "bench-digits", "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "learning_rate": 0.001},
    "training": {"epochs": 1, "batch_size": 64, "seed": 7},
}


def prepare(folder: Path, rows: int) -> tuple[str, bytes, np.ndarray]:
    """A migrated SQLite database holding the tiled dataset and the checkpoint; (url, X)."""
    from core import train
    from core.datasets import load_builtin
    from store import checkpoints as store_checkpoints
    from store import datasets as store_datasets
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade_to_head
    from store.models import Tenant

    digits = load_builtin("digits")
    X = np.resize(np.asarray(digits.X, dtype=np.float64), (rows, digits.X.shape[1]))
    y = np.resize(np.asarray(digits.y), rows)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=X, y=y)
    blob = buffer.getvalue()
    checkpoint = bytes(train(SPEC, np.asarray(digits.X), np.asarray(digits.y)).checkpoint())
    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as s:
        tenant = Tenant(name="bench")
        s.add(tenant)
        s.flush()
        dataset = store_datasets.create(
            s, tenant.id, name="digits-tiled", format="npz", n_rows=rows,
            x_shape=list(X.shape), y_shape=list(y.shape), kind="classification",
            classes=list(range(10)), sha256=hashlib.sha256(blob).hexdigest(),
            size_bytes=len(blob), blob=blob)
        ckpt = store_checkpoints.import_checkpoint(s, tenant.id, blob=checkpoint)
        with open(folder / "ids", "w") as out:
            out.write(f"{tenant.id} {dataset.id} {ckpt.id}")
    engine.dispose()
    return url, checkpoint, X


def _score_in_child(url: str, folder: str, rows: int, queue: Any) -> None:
    from config.settings import Settings
    from store import batches
    from store.db import make_engine, make_session_factory
    from worker.batch_scoring import score

    tenant, dataset, ckpt = Path(folder, "ids").read_text().split()
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as s:
        batch_id = batches.create(s, tenant, checkpoint_id=ckpt, dataset_id=dataset,
                                  result_format="npy", rows_total=rows).id
    started, cpu = time.perf_counter(), time.process_time()
    outcome = score(sessions, Settings.from_env(), batch_id, "bench-worker")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    queue.put((outcome, elapsed, cpu, peak_rss()))


def peak_rss() -> int:
    """This process's peak resident bytes: VmHWM, its own address space's high-water mark.

    Not ru_maxrss: Linux carries ru_maxrss across exec, so a child spawned (fork + exec) by
    this benchmark's parent, which holds X and the forward pass's arrays, reported the
    parent's peak (1359 MiB = 2.78x X) rather than its own.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from core.checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        url, checkpoint, X = prepare(Path(tmp), args.rows)
        network = load_checkpoint(checkpoint)
        forward, batch, peaks = [], [], []
        forward_cpu, batch_cpu = [], []
        spawn = multiprocessing.get_context("spawn")  # a fresh process: its own peak RSS
        for _ in range(args.rounds):
            started, cpu = time.perf_counter(), time.process_time()
            network.predict(X)
            forward.append(time.perf_counter() - started)
            forward_cpu.append(time.process_time() - cpu)
            queue = spawn.Queue()
            child = spawn.Process(target=_score_in_child, args=(url, tmp, args.rows, queue))
            child.start()
            outcome, elapsed, cpu, peak = queue.get()
            child.join()
            assert outcome == "succeeded", outcome
            batch.append(elapsed)
            batch_cpu.append(cpu)
            peaks.append(peak)
            print(f"round {len(batch)}: forward {forward[-1]:.2f} s ({forward_cpu[-1]:.2f} s "
                  f"CPU), batch {elapsed:.2f} s ({cpu:.2f} s CPU), ratio "
                  f"{forward[-1] / elapsed:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)
    f, b, p = statistics.median(forward), statistics.median(batch), max(peaks)
    print(f"rows {args.rows:,}, X {X.nbytes / 2**20:.0f} MiB, rounds {args.rounds}")
    print(f"forward (core, one process): {args.rows / f:,.0f} rows/s ({f:.2f} s)")
    print(f"batch (worker scorer, claim to final commit): {args.rows / b:,.0f} rows/s "
          f"({b:.2f} s); ratio {f / b:.2f}")
    fc, bc = statistics.median(forward_cpu), statistics.median(batch_cpu)
    print(f"CPU seconds (all threads): forward {fc:.2f}, batch {bc:.2f}; ratio {fc / bc:.2f}")
    print(f"worker peak RSS {p / 2**20:.0f} MiB = {p / X.nbytes:.2f}x X")


if __name__ == "__main__":
    main()
