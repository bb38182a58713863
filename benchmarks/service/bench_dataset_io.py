"""A job's start on a 188 MB dataset read from PostgreSQL, against the layout it replaced.

Usage: ``.venv/bin/python benchmarks/service/bench_dataset_io.py [--rounds 5] [--quick]``

Issue 18, "Performance": job start (the dataset read from PostgreSQL until the first batch)
for 188 MB at most **0.3 s**. The dataset is MNIST's shape as float32: 60,000 x 784 features
and int64 labels (188.6 MB of arrays).

- ours, as the worker starts a job: ``worker.store_ops.load_dataset`` (the row, then its
  8,000-byte parts by binary COPY straight into the one allocation the arrays are views of:
  store/byte_parts.py, core/datasets/stored.py), then the first shuffled batch of 128 rows
  gathered and cast to float32, as the training loop's first step does;
- the peer, alternately in the same run: the layout until this revision, one bytea value per
  dataset holding an npz (uncompressed here, which favours it: the API stored it compressed),
  read in binary by ``store.db.read_bytea`` and parsed by ``core.datasets.parse_dataset``,
  then the same first batch.

The floor, also alternately: the same COPY of the parts with its blocks read and dropped
(what the database and the driver cost before any byte reaches an array).

Also timed once: storing the dataset as the API does (``store.datasets.create`` with the
arrays' frames streamed into parts by COPY).
"""

from __future__ import annotations

import io
import time
from typing import Any

import harness
import numpy as np

ROWS, FEATURES, BATCH = 60_000, 784, 128


def dataset(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = ROWS // 10 if quick else ROWS
    X = rng.random((rows, FEATURES), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    return X, y


def first_batch(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(1).permutation(len(X))[:BATCH]
    return X[order].astype(np.float32, copy=False), y[order]


def store(sessions: Any, tenant: str, X: np.ndarray, y: np.ndarray) -> tuple[str, float]:
    from core.datasets import stored
    from store import datasets

    t0 = time.perf_counter()
    with sessions.begin() as s:
        row = datasets.create(s, tenant, name="mnist-like", format="npz", n_rows=len(X),
                              x_shape=list(X.shape), y_shape=list(y.shape),
                              kind="classification", classes=list(range(10)),
                              sha256="0" * 64, size_bytes=stored.framed_size([X, y]),
                              data=stored.frames([X, y]))
        ident = row.id
    return ident, time.perf_counter() - t0


def ours(sessions: Any, settings: Any, tenant: str, dataset_id: str) -> dict[str, float]:
    from worker.store_ops import Claimed, load_dataset

    claimed = Claimed(attempts=1, tenant_id=tenant, spec={"dataset": dataset_id},
                      dataset_id=dataset_id, last_error=None)
    t0 = time.perf_counter()
    with sessions() as s:
        X, y = load_dataset(s, claimed, settings)
    t1 = time.perf_counter()
    first_batch(X, y)
    t2 = time.perf_counter()
    return {"read_s": t1 - t0, "batch_s": t2 - t1, "total_s": t2 - t0}


def peer(sessions: Any, table: Any) -> dict[str, float]:
    from core.datasets import DatasetLimits, parse_dataset
    from store.db import read_bytea

    t0 = time.perf_counter()
    with sessions() as s:
        blob = read_bytea(s, table, "blob", "id", 1)
    t1 = time.perf_counter()
    assert blob is not None
    data = parse_dataset(blob, "npz", limits=DatasetLimits(max_bytes=1 << 31,
                                                           max_rows=10**6,
                                                           max_features=10**5))
    del blob
    t2 = time.perf_counter()
    first_batch(data.X, data.y)
    t3 = time.perf_counter()
    return {"read_s": t1 - t0, "parse_s": t2 - t1, "batch_s": t3 - t2, "total_s": t3 - t0}


def copy_floor(sessions: Any, dataset_id: str) -> float:
    """The database's share: the same COPY of the parts, its blocks read and dropped."""
    from store.db import driver_connection

    t0 = time.perf_counter()
    with sessions() as s, driver_connection(s.connection()).cursor() as cur, cur.copy(
            "COPY (SELECT seq, data FROM dataset_parts WHERE dataset_id = %s)"
            " TO STDOUT (FORMAT BINARY)", (dataset_id,)) as copy:
        for _block in copy:
            pass
    return time.perf_counter() - t0


def main() -> None:
    import sqlalchemy as sa

    from config.settings import Settings
    from store.db import make_engine, make_session_factory
    from store.tenants import get_or_create

    args = harness.parse(harness.parser(__doc__))
    X, y = dataset(args.quick)
    size = X.nbytes + y.nbytes
    print(f"dataset {X.shape} float32 + {y.shape} int64: {size / 1e6:.1f} MB; "
          f"load {harness.load()}", flush=True)
    settings = Settings()
    runs: dict[str, list[Any]] = {}
    with harness.scratch_postgres() as db:
        engine = make_engine(db)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            tenant = get_or_create(s, "bench").id
        dataset_id, store_s = store(sessions, tenant, X, y)
        # the peer's table: one EXTERNAL bytea per dataset, as revision 0002 stored it
        table = sa.Table("bench_blob", sa.MetaData(), sa.Column("id", sa.Integer,
                         primary_key=True), sa.Column("blob", sa.LargeBinary))
        table.create(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE bench_blob ALTER COLUMN blob SET STORAGE EXTERNAL")
            buffer = io.BytesIO()
            np.savez(buffer, X=X, y=y)
            conn.execute(table.insert(), {"id": 1, "blob": buffer.getvalue()})
            del buffer
        del X, y
        for r in range(args.rounds):
            row: dict[str, Any] = {"ours": ours(sessions, settings, tenant, dataset_id),
                                   "peer": peer(sessions, table),
                                   "copy_floor_s": copy_floor(sessions, dataset_id),
                                   "load": harness.load()}
            print(f"round {r + 1}/{args.rounds}: ours {row['ours']['total_s']:.3f} s (read "
                  f"{row['ours']['read_s']:.3f}), one bytea + npz "
                  f"{row['peer']['total_s']:.3f} s (read {row['peer']['read_s']:.3f}, parse "
                  f"{row['peer']['parse_s']:.3f}), the COPY alone {row['copy_floor_s']:.3f};"
                  f" load {row['load']}", flush=True)
            for key, value in row.items():
                runs.setdefault(key, []).append(value)
        engine.dispose()
    ours_s = harness.median([r["total_s"] for r in runs["ours"]])
    peer_s = harness.median([r["total_s"] for r in runs["peer"]])
    harness.print_table(
        f"job start on {size / 1e6:.0f} MB from PostgreSQL (read until the first batch); "
        f"medians of {args.rounds} rounds",
        ["path", "total s", "read s", "target", "verdict"],
        [["parts by COPY into the arrays", ours_s,
          harness.median([r["read_s"] for r in runs["ours"]]), "<=0.3 s",
          harness.verdict(ours_s <= 0.3)],
         ["one bytea + npz (before)", peer_s,
          harness.median([r["read_s"] for r in runs["peer"]]), "", ""],
         ["the COPY alone (database floor)", harness.median(runs["copy_floor_s"]), "", "",
          ""]])
    print(f"  ours / before: {ours_s / peer_s:.2f}; ours / the COPY alone: "
          f"{ours_s / harness.median(runs['copy_floor_s']):.2f}")
    print(f"  storing it (create + parts by COPY + commit): {store_s:.3f} s")
    harness.write_results("bench_dataset_io", {
        "bytes": size, "rounds": args.rounds, "runs": runs, "store_s": store_s,
        "median_ours_s": ours_s, "median_peer_s": peer_s})


if __name__ == "__main__":
    main()
