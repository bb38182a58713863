"""Digests that say whether two runs are the same, and where two runs first part.

A run is reproducible when the same spec, data and seed give the same bits; these functions
name the pieces (the spec's canonical JSON, the weight arrays) by their sha256 and compare two
runs epoch by epoch from what the store keeps: every epoch's metrics, and the weights of the
checkpoints both runs kept.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Metrics that measure the machine, not the run: they differ between identical runs.
TIMING_METRICS = frozenset({"seconds"})


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same document always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def spec_sha256(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec)).hexdigest()


def arrays_sha256(arrays: Mapping[str, NDArray[Any]]) -> str:
    """A digest of named arrays: each name, dtype, shape and C-order bytes, names sorted."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(canonical_json([name, array.dtype.str, list(array.shape)]))
        digest.update(array.tobytes())
    return digest.hexdigest()


def weights_sha256(checkpoint: bytes) -> str:
    """The digest of a checkpoint's weights alone (its public arrays: parameters and buffers),
    so two runs compare equal whatever their optimizer state's or history's encoding."""
    with np.load(io.BytesIO(checkpoint), allow_pickle=False) as npz:
        return arrays_sha256({name: npz[name] for name in npz.files
                              if not name.startswith("__")})


def compare_runs(history_a: Sequence[Mapping[str, Any]], history_b: Sequence[Mapping[str, Any]],
                 weights_a: Mapping[tuple[int, str], str],
                 weights_b: Mapping[tuple[int, str], str]) -> dict[str, Any]:
    """Are two runs bit-identical, and if not, from which epoch on do they differ?

    Parameters
    ----------
    history_a, history_b : each run's per-epoch metrics, ``[{"epoch": 1, "loss": ...}]``
    weights_a, weights_b : ``(epoch, kind) -> weights_sha256`` of each kept checkpoint

    Returns
    -------
    ``{"identical", "first_divergent_epoch", "epochs_compared", "checkpoints_compared"}``.
    An epoch diverges when only one run has it, when a metric other than the epoch's seconds
    differs (exactly: identical runs give identical floats), or when both kept a checkpoint of
    the same kind there and its weights differ.
    """
    rows_a = {int(r["epoch"]): r for r in history_a}
    rows_b = {int(r["epoch"]): r for r in history_b}
    divergent = [e for e in rows_a.keys() | rows_b.keys()
                 if _metrics(rows_a.get(e)) != _metrics(rows_b.get(e))]
    shared = weights_a.keys() & weights_b.keys()
    divergent += [epoch for epoch, kind in shared
                  if weights_a[(epoch, kind)] != weights_b[(epoch, kind)]]
    first = min(divergent) if divergent else None
    return {"identical": first is None, "first_divergent_epoch": first,
            "epochs_compared": len(rows_a.keys() | rows_b.keys()),
            "checkpoints_compared": len(shared)}


def _metrics(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in TIMING_METRICS}
