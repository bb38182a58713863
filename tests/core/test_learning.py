"""Learning, end to end in float32 with defaults a user would pick.

XOR must be solved outright; on the 8x8 digits with 20% held out (never seen in training,
not even as validation rows) an MLP must reach 97% and a small CNN 98% test accuracy.

BLAS runs single-threaded here: these matrices are small, and on a shared 2-core machine a
2-thread OpenBLAS waiting on a busy core made the CNN test 10-50x slower (measured).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from core.datasets import load_builtin
from core.training import train

EARLY_STOPPING = {"monitor": "val_loss", "patience": 10, "restore_best": True}


def spec(layers: list[dict[str, Any]], **training: Any) -> dict[str, Any]:
    return {
        "name": "learn", "model": {"layers": layers},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"batch_size": 32, "validation_split": 0.1, "dtype": "float32",
                     "seed": 0, **training},
    }


@pytest.fixture(autouse=True)
def single_threaded_blas() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test): a seeded 80/20 split of the builtin digits."""
    data = load_builtin("digits")
    X, y = np.asarray(data.X, dtype=np.float32), np.asarray(data.y)
    assert X.shape[0] == 1797 and X.reshape(len(X), -1).shape[1] == 64
    perm = np.random.default_rng(0).permutation(len(X))
    test, train_rows = perm[:360], perm[360:]
    return X[train_rows], y[train_rows], X[test], y[test]


def test_xor_is_solved() -> None:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    layers = [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 2}]
    result = train(spec(layers, epochs=300, batch_size="full", validation_split=0.0,
                        standardize=False) | {"optimizer": {"type": "adam",
                                                            "learning_rate": 0.05}}, X, y)
    probabilities = result.network.predict(X)
    assert (probabilities.argmax(axis=1) == y).all()
    assert result.history[-1]["accuracy"] == 1.0
    assert probabilities[np.arange(4), y].min() > 0.9


def test_digits_mlp_reaches_97_percent(digits: tuple[np.ndarray, ...]) -> None:
    X_train, y_train, X_test, y_test = digits
    layers = [{"type": "dense", "units": 128, "activation": "relu"},
              {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}]
    result = train(spec(layers, epochs=100, early_stopping=EARLY_STOPPING),
                   X_train.reshape(len(X_train), -1), y_train)
    predicted = result.network.predict(X_test.reshape(len(X_test), -1)).argmax(axis=1)
    accuracy = float((predicted == y_test).mean())
    assert accuracy >= 0.97, accuracy
    assert result.network.flat_params.dtype == np.float32


def test_digits_cnn_reaches_98_percent(digits: tuple[np.ndarray, ...]) -> None:
    X_train, y_train, X_test, y_test = digits
    conv = {"type": "conv2d", "kernel_size": 3, "padding": "same", "activation": "relu"}
    layers = [{**conv, "filters": 32}, {**conv, "filters": 64},
              {"type": "max_pool2d", "pool_size": 2}, {"type": "dropout", "rate": 0.25},
              {"type": "flatten"}, {"type": "dense", "units": 128, "activation": "relu"},
              {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 10}]
    images = X_train.reshape(-1, 1, 8, 8)
    result = train(spec(layers, epochs=40, early_stopping=EARLY_STOPPING), images, y_train)
    predicted = result.network.predict(X_test.reshape(-1, 1, 8, 8)).argmax(axis=1)
    accuracy = float((predicted == y_test).mean())
    assert accuracy >= 0.98, accuracy
