"""The uninterrupted reference run a faulted job must match, and the checks that compare a
job's stored rows and checkpoints with it, bit for bit."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import sqlalchemy as sa

from tests.worker.conftest import Backend

# Metrics that differ between runs by nature (wall clock).
VOLATILE_METRICS = ("seconds",)


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


# The JSON members of an internal checkpoint (core/checkpoint.py, format 3).
JSON_MEMBERS = ("__state__", "__history__")


def comparable_state(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The __state__ JSON and the __history__ without wall-clock seconds: what two equal runs
    must share."""
    state = json.loads(str(arrays["__state__"]))
    history = json.loads(arrays["__history__"].tobytes())  # UTF-8 JSON (format 3)
    state["history"] = [{k: v for k, v in row.items() if k not in VOLATILE_METRICS}
                        for row in history]
    return dict(state)


def assert_bit_identical(got: bytes, want: bytes) -> int:
    """Every array (weights, optimizer moments, preprocessing) equal byte for byte, and the
    resume state (epoch, RNG states, history but seconds) equal; the number of arrays checked."""
    a, b = npz_arrays(got), npz_arrays(want)
    assert sorted(a) == sorted(b)
    arrays = [name for name in a if name not in JSON_MEMBERS]
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
