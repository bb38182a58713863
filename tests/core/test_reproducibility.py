"""core.reproducibility: digests and the epoch-by-epoch comparison, by hand."""

from __future__ import annotations

import io

import numpy as np

from core.reproducibility import (
    arrays_sha256,
    compare_runs,
    spec_sha256,
    weights_sha256,
)


def test_the_spec_digest_ignores_key_order_but_not_values() -> None:
    a = {"training": {"seed": 1, "epochs": 2}, "name": "x"}
    b = {"name": "x", "training": {"epochs": 2, "seed": 1}}
    assert spec_sha256(a) == spec_sha256(b)
    assert spec_sha256(a) != spec_sha256({**a, "name": "y"})


def test_the_arrays_digest_sees_dtype_shape_and_every_bit() -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    base = arrays_sha256({"0.weight": w})
    assert arrays_sha256({"0.weight": w.copy()}) == base
    assert arrays_sha256({"0.weight": w.astype(np.float64)}) != base
    assert arrays_sha256({"0.weight": w.reshape(3, 2)}) != base
    assert arrays_sha256({"1.weight": w}) != base
    nudged = w.copy()
    nudged.view(np.uint32)[0, 0] ^= 1  # one bit of one float
    assert arrays_sha256({"0.weight": nudged}) != base
    assert arrays_sha256({"0.weight": np.asfortranarray(w)}) == base


def test_weights_digest_reads_only_the_public_arrays() -> None:
    def npz(**arrays: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    w = np.ones((2, 2), dtype=np.float32)
    one = npz(**{"0.weight": w, "__state__": np.frombuffer(b'{"epoch": 1}', np.uint8)})
    two = npz(**{"0.weight": w, "__state__": np.frombuffer(b'{"epoch": 9}', np.uint8)})
    assert weights_sha256(one) == weights_sha256(two) == arrays_sha256({"0.weight": w})


def test_identical_runs_compare_identical_whatever_their_seconds() -> None:
    history = [{"epoch": 1, "loss": 0.5, "seconds": 0.1}, {"epoch": 2, "loss": 0.25,
                                                           "seconds": 0.1}]
    other = [{**row, "seconds": 9.0} for row in history]
    weights = {(2, "final"): "abc", (1, "periodic"): "def"}
    assert compare_runs(history, other, weights, dict(weights)) == {
        "identical": True, "first_divergent_epoch": None, "epochs_compared": 2,
        "checkpoints_compared": 2}


def test_the_first_divergent_epoch_is_the_earliest_difference_of_any_kind() -> None:
    a = [{"epoch": e, "loss": 1.0 / e} for e in range(1, 6)]
    b = [dict(row) for row in a]
    b[3]["loss"] += 1e-12  # epoch 4's metrics differ
    weights_a = {(2, "periodic"): "x", (5, "final"): "y"}
    weights_b = {(2, "periodic"): "X", (5, "final"): "y"}  # epoch 2's weights differ
    result = compare_runs(a, b, weights_a, weights_b)
    assert result["identical"] is False and result["first_divergent_epoch"] == 2
    assert compare_runs(a, b, weights_a, weights_a)["first_divergent_epoch"] == 4
    # One run stopped early: the first epoch only the other has is where they part.
    assert compare_runs(a, a[:3], {}, {})["first_divergent_epoch"] == 4
