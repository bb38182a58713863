"""Training results pinned bit for bit: the data pipeline may change how rows reach the
network (per-batch gathering, casting and standardization, issue 18) but never what they are.

``golden/training_pipeline.json`` was written by the training loop as it stood before issue
18 changed the pipeline (commit 1019457, where the split, the cast, the standardization and
the shuffle each copied the whole data set): for every case below, the final weights' sha256
(core.reproducibility.weights_sha256) and every epoch's metrics but ``seconds``, as JSON
floats (``repr``, read back exactly). Rewrite it only for an intended change of results::

    PYTHONPATH=. .venv/bin/python tests/core/test_training_golden.py --write

The runs happen in a child process with OpenBLAS's Haswell kernels (`BLAS_ENV`). Left to
itself OpenBLAS picks kernels by the CPU (AVX-512 ones on some machines this suite runs on;
the CI machines' environment pins Haswell), and kernels add in different orders: the same code
and seed give other last bits. The kernels are chosen when NumPy loads OpenBLAS, which a pytest
plugin does before any of our code runs, hence the child. Haswell's run on any x86-64 CPU
with AVX2. The digests were rewritten with them by commit fe0f8ed's own code (the same code
gives the file's earlier digests with the AVX-512 kernels, bit for bit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.reproducibility import weights_sha256
from core.training import train

GOLDEN = Path(__file__).parent / "golden" / "training_pipeline.json"
ROOT = Path(__file__).resolve().parents[2]
BLAS_ENV = {"OPENBLAS_CORETYPE": "Haswell"}

MLP = [{"type": "dense", "units": 16, "activation": "relu"},
       {"type": "dropout", "rate": 0.2},
       {"type": "dense", "units": 8, "activation": "tanh"},
       {"type": "dense", "units": 3}]
CNN = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
       {"type": "max_pool2d", "pool_size": 2},
       {"type": "batch_norm"},
       {"type": "flatten"},
       {"type": "dense", "units": 3}]


def _images(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """90 8x8 one-channel images: uint8 pixel values, or those cast to `dtype`."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (90, 1, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 3, 90)
    return (X if dtype == "uint8" else X.astype(dtype)), y


def _table(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """93 rows of 7 features on different scales (a ragged last batch for most sizes)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((93, 7)) * np.array([1, 10, 0.1, 5, 1, 100, 2]) + 3
    return X.astype(dtype), rng.integers(0, 3, 93)


def _wide(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """More validation rows than one evaluation chunk (core.metrics.EVAL_BATCH)."""
    rng = np.random.default_rng(5)
    return rng.standard_normal((rows, 12)).astype(np.float32), rng.integers(0, 3, rows)


def _regression() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    X = rng.standard_normal((70, 5)).astype(np.float32)
    return X, (X @ rng.standard_normal((5, 2))).astype(np.float32)


def _spec(layers: list[dict[str, Any]], *, loss: str = "cross_entropy", lr: float = 0.01,
          **training: Any) -> dict[str, Any]:
    return {"model": {"layers": layers}, "loss": {"type": loss},
            "optimizer": {"type": "adam", "learning_rate": lr},
            "training": {"epochs": 4, "batch_size": 16, "seed": 13, **training}}


# name -> (spec, data): MLP and CNN, with and without a validation split, standardization
# and shuffle, float32 and float64 runs, inputs given in another dtype than the run's.
CASES: dict[str, tuple[dict[str, Any], Callable[[], tuple[np.ndarray, np.ndarray]]]] = {
    "mlp_f32_plain": (_spec(MLP, validation_split=0, standardize=False, shuffle=False),
                      lambda: _table("float32")),
    "mlp_f32_all": (_spec(MLP, validation_split=0.2, standardize=True, shuffle=True),
                    lambda: _table("float32")),
    "mlp_f32_val_only": (_spec(MLP, validation_split=0.3, standardize=False, shuffle=False),
                         lambda: _table("float32")),
    "mlp_f32_shuffle_std": (_spec(MLP, validation_split=0, standardize=True, shuffle=True,
                                  batch_size=10), lambda: _table("float32")),
    "mlp_f64_all": (_spec(MLP, validation_split=0.25, standardize=True, shuffle=True,
                          dtype="float64"), lambda: _table("float64")),
    "mlp_f64_data_f32_run": (_spec(MLP, validation_split=0.2, standardize=True,
                                   shuffle=True), lambda: _table("float64")),
    "mlp_full_batch": (_spec(MLP, validation_split=0.2, standardize=True, shuffle=True,
                             batch_size="full"), lambda: _table("float32")),
    "mlp_many_val_rows": (_spec(MLP, validation_split=0.5, standardize=True, shuffle=True,
                                batch_size=128, epochs=2), lambda: _wide(2600)),
    "regression_mse": (_spec([*MLP[:-1], {"type": "dense", "units": 2}], loss="mse",
                             validation_split=0.2, standardize=True, shuffle=True),
                       _regression),
    "cnn_f32_plain": (_spec(CNN, validation_split=0, standardize=False, shuffle=False),
                      lambda: _images("float32")),
    "cnn_f32_all": (_spec(CNN, validation_split=0.2, standardize=True, shuffle=True,
                          batch_size=8), lambda: _images("float32")),
    "cnn_f64_all": (_spec(CNN, validation_split=0.2, standardize=True, shuffle=True,
                          dtype="float64"), lambda: _images("float64")),
    "cnn_uint8_all": (_spec(CNN, validation_split=0.2, standardize=True, shuffle=True,
                            batch_size=8), lambda: _images("uint8")),
    "cnn_uint8_unstandardized": (_spec(CNN, validation_split=0.2, standardize=False,
                                       shuffle=True, lr=0.001),
                                 lambda: _images("uint8")),
}
# The cases also run stopped after this many batches and resumed from the checkpoint.
RESUMED = {"mlp_f32_all": 9, "cnn_uint8_all": 13, "mlp_f64_all": 5}


def run(name: str, stop_after: int | None = None, *, overwrite: bool = False
        ) -> dict[str, Any]:
    """The case's outcome: weights digest and per-epoch metrics (``seconds`` left out).
    ``overwrite``: each train call gets fresh arrays it may standardize in place, as the
    worker's are."""
    spec, make_data = CASES[name]
    X, y = make_data()
    if stop_after is None:
        result = train(spec, X, y, overwrite_inputs=overwrite)
    else:
        polls = iter(range(10**9))
        first = train(spec, X, y, should_stop=lambda: next(polls) == stop_after,
                      overwrite_inputs=overwrite)
        assert first.stop_reason == "cancelled"
        X, y = make_data()
        result = train(spec, X, y, resume=first.checkpoint(), overwrite_inputs=overwrite)
    assert result.stop_reason == "epochs_done"
    return {"weights_sha256": weights_sha256(result.checkpoint()),
            "history": [{k: v for k, v in h.items() if k != "seconds"}
                        for h in result.history]}


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


STANDARDIZED = sorted(name for name, (spec, _) in CASES.items()
                      if spec["training"]["standardize"])
# (case, stopped after this many batches and resumed, or None; inputs overwritten in place)
RUNS = ([(name, None, False) for name in sorted(CASES)]
        + [(name, RESUMED[name], False) for name in sorted(RESUMED)]
        + [(name, None, True) for name in STANDARDIZED]
        + [(name, RESUMED[name], True) for name in sorted(RESUMED)])


def _key(name: str, stop_after: int | None, overwrite: bool) -> str:
    return f"{name}/{stop_after}/{overwrite}"


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Any]:
    """Every run's outcome, from a child process with the pinned kernels (see above)."""
    done = subprocess.run([sys.executable, __file__, "--outcomes"], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **BLAS_ENV, "PYTHONPATH": str(ROOT)})
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_matches_the_golden_run(name: str, outcomes: dict[str, Any]) -> None:
    assert outcomes[_key(name, None, False)] == _golden()[name]


@pytest.mark.parametrize("name", sorted(RESUMED))
def test_a_resumed_run_matches_the_golden_run(name: str, outcomes: dict[str, Any]) -> None:
    assert outcomes[_key(name, RESUMED[name], False)] == _golden()[name]


@pytest.mark.parametrize("name", STANDARDIZED)
def test_inputs_standardized_in_place_train_to_the_golden_bits(
        name: str, outcomes: dict[str, Any]) -> None:
    """overwrite_inputs (the worker's arrays): X standardized once, not per batch."""
    assert outcomes[_key(name, None, True)] == _golden()[name]


@pytest.mark.parametrize("name", sorted(RESUMED))
def test_inputs_standardized_in_place_resume_to_the_golden_bits(
        name: str, outcomes: dict[str, Any]) -> None:
    assert outcomes[_key(name, RESUMED[name], True)] == _golden()[name]


def test_inputs_are_standardized_in_place_only_when_handed_over_and_writeable() -> None:
    spec, make_data = CASES["mlp_f32_all"]
    X, y = make_data()
    original = X.copy()
    train(spec, X, y)
    assert np.array_equal(X, original)  # not handed over: never written
    X.setflags(write=False)
    train(spec, X, y, overwrite_inputs=True)
    assert np.array_equal(X, original)  # read-only (a cached builtin): left alone
    X = original.copy()
    train(spec, X, y, overwrite_inputs=True)
    assert not np.array_equal(X, original)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=0.2)  # standardized on the split


def test_the_golden_file_covers_every_case() -> None:
    assert sorted(_golden()) == sorted(CASES)


if __name__ == "__main__" and sys.argv[1:2] in (["--outcomes"], ["--write"]):
    if {k: os.environ.get(k) for k in BLAS_ENV} != BLAS_ENV:  # NumPy is loaded: start again
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **BLAS_ENV})
    if sys.argv[1] == "--outcomes":
        print(json.dumps({_key(*r): run(r[0], r[1], overwrite=r[2]) for r in RUNS}))
    else:
        GOLDEN.write_text(json.dumps({name: run(name) for name in sorted(CASES)}, indent=1)
                          + "\n")
        print(f"written {GOLDEN}")
