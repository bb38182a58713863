"""Saving and loading a 10-million-parameter checkpoint on PostgreSQL, against raw psycopg.

Usage: ``.venv/bin/python benchmarks/service/bench_checkpoint_io.py [--rounds 3] [--quick]``

Issue 3, "Performance": saving and loading the checkpoint of a 10-million-parameter model
on PostgreSQL take **under 1 s each**. The model is an MLP 1024-4096-1536-10 (10,506,762
float32 parameters) after one epoch of Adam, so its internal checkpoint carries what a
resume needs: the weights and both Adam moments (~126 MB).

- save, as the worker does at an epoch's end: serialise the training state
  (``TrainResult.checkpoint()``, core.checkpoint.dump_checkpoint), then in one transaction
  ``worker.store_ops.save_checkpoint`` (sha256, the row, its bytes as 8,000-byte parts by
  COPY: store/checkpoint_parts.py) and commit;
- load for a resume, as the runner does: ``store_ops.latest_checkpoint_blob`` and
  ``core.checkpoint.load_state``;
- load for predict, as the API does: ``store.checkpoints.get_blob`` and
  ``core.checkpoint.load_checkpoint`` (a network ready to predict).

The peer, alternately in the same run: the same bytes through bare psycopg 3 as one value
(one INSERT of a bytea and a commit; one SELECT), the way the store kept them until session 4.
"""

from __future__ import annotations

import time
from typing import Any

import harness
import numpy as np

HIDDEN = [4096, 1536]
INPUTS = 1024


def trained_state(quick: bool) -> Any:
    """A TrainResult of the 10M-parameter MLP after one epoch of Adam on a few rows."""
    from core.training import train

    rows = 256 if quick else 1024
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, INPUTS), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    spec = {"model": {"layers": [
                *({"type": "dense", "units": h, "activation": "relu"} for h in HIDDEN),
                {"type": "dense", "units": 10}]},
            "optimizer": {"type": "adam"},
            "training": {"epochs": 1, "batch_size": 128, "validation_split": 0.0,
                         "standardize": False, "dtype": "float32", "seed": 0}}
    return train(spec, X, y)


def ours_save(sessions: Any, result: Any, job_id: str, epoch: int) -> dict[str, float]:
    from worker import store_ops

    t0 = time.perf_counter()
    blob = result.checkpoint()
    t1 = time.perf_counter()
    with sessions.begin() as s:
        store_ops.save_checkpoint(s, job_id, epoch, "periodic", blob, {"loss": 1.0})
    t2 = time.perf_counter()
    return {"serialise_s": t1 - t0, "store_s": t2 - t1, "total_s": t2 - t0,
            "bytes": len(blob)}


def ours_load_resume(sessions: Any, job_id: str) -> dict[str, float]:
    from core.checkpoint import load_state
    from worker import store_ops

    t0 = time.perf_counter()
    with sessions() as s:
        blob = store_ops.latest_checkpoint_blob(s, job_id)
    t1 = time.perf_counter()
    assert blob is not None
    load_state(blob)
    t2 = time.perf_counter()
    return {"read_s": t1 - t0, "parse_s": t2 - t1, "total_s": t2 - t0}


def ours_load_predict(sessions: Any, job_id: str) -> dict[str, float]:
    from core.checkpoint import load_checkpoint
    from store import checkpoints

    with sessions() as s:
        row = checkpoints.latest_for_job(s, job_id)
        assert row is not None
        checkpoint_id = row.id
    t0 = time.perf_counter()
    with sessions() as s:
        blob = checkpoints.get_blob(s, checkpoint_id)
    t1 = time.perf_counter()
    assert blob is not None
    network = load_checkpoint(blob)
    t2 = time.perf_counter()
    assert network.num_params >= 10_000_000
    return {"read_s": t1 - t0, "parse_s": t2 - t1, "total_s": t2 - t0}


def peer_save(conn: Any, blob: bytes) -> float:
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO bench_blob (b) VALUES (%s)", (blob,))
    conn.commit()
    return time.perf_counter() - t0


def peer_load(conn: Any) -> float:
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT b FROM bench_blob ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
    conn.commit()
    assert row is not None and len(row[0]) > 0
    return time.perf_counter() - t0


def main() -> None:
    import psycopg
    import sqlalchemy as sa

    from store.db import make_engine, make_session_factory
    from store.tenants import get_or_create

    args = harness.parse(harness.parser(__doc__))
    result = trained_state(args.quick)
    params = int(result.network.num_params)
    print(f"MLP {INPUTS}-{'-'.join(map(str, HIDDEN))}-10: {params:,} parameters; "
          f"load {harness.load()}", flush=True)
    runs: dict[str, list[dict[str, float]]] = {}
    with harness.scratch_postgres() as db:
        engine = make_engine(db)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            from store import jobs

            tenant = get_or_create(s, "bench").id
            job_id = jobs.create_job(s, tenant, {"name": "ckpt", "model": {"layers": []}},
                                     None).id
        raw_url = sa.engine.make_url(db).set(drivername="postgresql").render_as_string(
            hide_password=False)
        with psycopg.connect(raw_url) as conn:
            conn.execute("CREATE TABLE bench_blob (id serial PRIMARY KEY, b bytea)")
            conn.commit()
            blob = result.checkpoint()
            weights = result.weights_npz()
            for r in range(args.rounds):
                row: dict[str, Any] = {}
                row["save"] = ours_save(sessions, result, job_id, r + 1)
                row["peer_save_s"] = peer_save(conn, blob)
                row["load_resume"] = ours_load_resume(sessions, job_id)
                row["peer_load_s"] = peer_load(conn)
                # The floor for the weights alone (no optimizer state): what a checkpoint
                # without Adam's two moments would cost the database.
                row["peer_weights_save_s"] = peer_save(conn, weights)
                row["peer_weights_load_s"] = peer_load(conn)
                row["load_predict"] = ours_load_predict(sessions, job_id)
                row["load"] = harness.load()
                print(f"round {r + 1}/{args.rounds}: save {row['save']['total_s']:.3f} s "
                      f"(serialise {row['save']['serialise_s']:.3f}, store "
                      f"{row['save']['store_s']:.3f}; psycopg {row['peer_save_s']:.3f}), "
                      f"resume load {row['load_resume']['total_s']:.3f} s, predict load "
                      f"{row['load_predict']['total_s']:.3f} s (psycopg read "
                      f"{row['peer_load_s']:.3f}); load {row['load']}", flush=True)
                for key, value in row.items():
                    runs.setdefault(key, []).append(value)  # type: ignore[arg-type]
        engine.dispose()
    report(runs, params, len(blob), args.rounds)
    print(f"  psycopg alone, the weights only ({len(weights) / 1e6:.0f} MB): save "
          f"{harness.median(runs['peer_weights_save_s']):.3f} s, read "
          f"{harness.median(runs['peer_weights_load_s']):.3f} s")


def report(runs: dict[str, list[Any]], params: int, size: int, rounds: int) -> None:
    def med(key: str, field: str | None = None) -> float:
        return harness.median([r[field] if field else r for r in runs[key]])

    save, resume, predict = med("save", "total_s"), med("load_resume", "total_s"), \
        med("load_predict", "total_s")
    rows = [
        ["save (serialise + store + commit)", save, med("save", "serialise_s"),
         med("save", "store_s"), med("peer_save_s"), "<1 s", harness.verdict(save < 1)],
        ["load for resume (read + load_state)", resume, med("load_resume", "parse_s"),
         med("load_resume", "read_s"), med("peer_load_s"), "<1 s", harness.verdict(resume < 1)],
        ["load for predict (read + network)", predict, med("load_predict", "parse_s"),
         med("load_predict", "read_s"), med("peer_load_s"), "<1 s",
         harness.verdict(predict < 1)],
    ]
    harness.print_table(
        f"{params:,}-parameter checkpoint ({size / 1e6:.0f} MB) on PostgreSQL; medians of "
        f"{rounds} rounds",
        ["operation", "total s", "core s", "database s", "psycopg s", "target", "verdict"],
        rows)
    harness.write_results("bench_checkpoint_io", {
        "params": params, "bytes": size, "rounds": rounds, "runs": runs,
        "median_save_s": save, "median_load_resume_s": resume,
        "median_load_predict_s": predict})


if __name__ == "__main__":
    main()
