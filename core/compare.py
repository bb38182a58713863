"""Runs side by side: which spec values differ, and each run's best and last metrics.

Pure functions over what the store keeps (a job's spec as a JSON object, its per-epoch metric
history), so the API, the CLI and the dashboard show the same comparison. Only the paths
whose values differ are listed: a compare page that repeats every key of two near-identical
specs hides the one that matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.monitors import MONITORS, direction

#: What a path holds in a spec that lacks it (another optimizer type, a missing schedule).
ABSENT: Any = None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"layers": [{"units": 8}]}}`` -> ``{"model.layers[0].units": 8}``.

    Leaves are JSON scalars; an empty object or list is a leaf of its own (so ``[]`` and a
    missing key differ).
    """
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def spec_differences(specs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The flattened spec paths whose values are not the same in every run.

    Parameters
    ----------
    specs : run id -> its spec (as stored: every default filled, so a default and an
        explicit equal value compare equal)

    Returns
    -------
    ``[{"path": "optimizer.learning_rate", "values": {run id: value}}]`` in the order the
    paths first appear; a run whose spec lacks the path shows ``None``.
    """
    flat = {run: flatten(spec) for run, spec in specs.items()}
    paths: dict[str, None] = {}
    for values in flat.values():
        paths.update(dict.fromkeys(values))
    out: list[dict[str, Any]] = []
    for path in paths:
        values = {run: f.get(path, ABSENT) for run, f in flat.items()}
        present = [path in f for f in flat.values()]
        if not all(present) or len({_key(v) for v in values.values()}) > 1:
            out.append({"path": path, "values": values})
    return out


def _key(value: Any) -> Any:
    # 1 and 1.0 are the same JSON number; True is not 1.
    return (type(value) is bool, value)


def metric_summary(history: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each metric's best value and epoch (for metrics with a direction) and its last value.

    ``history`` is a run's per-epoch rows, oldest first (``[{"epoch": 1, "loss": ...}]``).
    Best follows :func:`core.monitors.direction` (accuracies up, losses down); the
    learning rate and the epoch's seconds have no better side, so their ``best`` is None.
    Missing values (a diverged epoch's NaN) are skipped.
    """
    summary: dict[str, dict[str, Any]] = {}
    for row in history:
        epoch = int(row["epoch"])
        for name, value in row.items():
            if name == "epoch" or value is None:
                continue
            entry = summary.setdefault(name, {"best": None, "best_epoch": None,
                                              "last": None, "last_epoch": None})
            entry["last"], entry["last_epoch"] = value, epoch
            if name not in MONITORS:
                continue
            best = entry["best"]
            better = (best is None or (value > best if direction(name) == "max"
                                       else value < best))
            if better:
                entry["best"], entry["best_epoch"] = value, epoch
    return summary
