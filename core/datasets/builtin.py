"""Data that ships with the project: the UCI 8x8 digits and small synthetic sets.

Every builtin is deterministic (the synthetic ones use a fixed seed), so a job on
``builtin:moons`` gives the same data on every worker.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from collections.abc import Callable
from importlib import resources

import numpy as np

from core.datasets.dataset import Dataset

SEED = 0


@functools.cache
def _digits_table() -> np.ndarray:
    """The parsed CSV, read once per process: parsing it is ~40 ms, most of a small job's
    setup, and a sweep's worker runs one trial after another (read-only; callers copy)."""
    # Read through importlib.resources so it also works from an installed wheel.
    blob = resources.files("core.datasets").joinpath("data/digits.csv.gz").read_bytes()
    text = gzip.decompress(blob).decode("ascii")
    table = np.array(list(csv.reader(io.StringIO(text))), dtype=np.float32)
    table.setflags(write=False)
    return table


def _digits_rows() -> tuple[np.ndarray, np.ndarray]:
    # A fresh copy each time, sliced as the parse was: the same layout, the same bits.
    table = _digits_table().copy()
    return table[:, :-1], table[:, -1].astype(np.int64)


def digits() -> Dataset:
    """UCI handwritten digits: X (1797, 64) float32 pixel counts 0..16, y digits 0..9."""
    X, y = _digits_rows()
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return Dataset(X, y, "classification", list(range(10)), names)


def digits_images() -> Dataset:
    """The digits as NCHW images for CNNs: X (1797, 1, 8, 8) float32."""
    X, y = _digits_rows()
    return Dataset(X.reshape(-1, 1, 8, 8), y, "classification", list(range(10)), None)


def xor() -> Dataset:
    """The four XOR points: X (4, 2), y = x0 xor x1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return Dataset(X, np.array([0, 1, 1, 0], dtype=np.int64), "classification", [0, 1],
                   ["x0", "x1"])


def noisy_xor(n: int = 400, noise: float = 0.1) -> Dataset:
    """XOR of the quadrant signs: X (n, 2) uniform in [-1, 1]^2 plus Gaussian noise."""
    rng = np.random.default_rng(SEED)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
    X += rng.normal(0.0, noise, X.shape)
    return Dataset(X.astype(np.float32), y, "classification", [0, 1], ["x0", "x1"])


def spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2) -> Dataset:
    """Interleaved spiral arms (the CS231n set): X (n_per_class * n_classes, 2)."""
    rng = np.random.default_rng(SEED)
    X = np.zeros((n_per_class * n_classes, 2))
    y = np.zeros(n_per_class * n_classes, dtype=np.int64)
    for k in range(n_classes):
        rows = slice(n_per_class * k, n_per_class * (k + 1))
        radius = np.linspace(0.0, 1.0, n_per_class)
        theta = (np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class)
                 + rng.normal(0.0, noise, n_per_class))
        X[rows] = np.c_[radius * np.sin(theta), radius * np.cos(theta)]
        y[rows] = k
    return Dataset(X.astype(np.float32), y, "classification", list(range(n_classes)),
                   ["x0", "x1"])


def moons(n: int = 400, noise: float = 0.1) -> Dataset:
    """Two interleaving half circles (as scikit-learn's make_moons): X (n, 2)."""
    rng = np.random.default_rng(SEED)
    n_out = n // 2
    n_in = n - n_out
    t_out, t_in = np.linspace(0.0, np.pi, n_out), np.linspace(0.0, np.pi, n_in)
    X = np.r_[np.c_[np.cos(t_out), np.sin(t_out)],
              np.c_[1.0 - np.cos(t_in), 0.5 - np.sin(t_in)]]
    y = np.r_[np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)]
    X += rng.normal(0.0, noise, X.shape)
    return Dataset(X.astype(np.float32), y, "classification", [0, 1], ["x0", "x1"])


BUILTINS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "digits_images": digits_images,
    "xor": xor,
    "noisy_xor": noisy_xor,
    "spirals": spirals,
    "moons": moons,
}


def load_builtin(name: str) -> Dataset:
    """The builtin dataset ``name`` (see ``BUILTINS``); DatasetError names the choices."""
    if name not in BUILTINS:
        from core.errors import DatasetError

        raise DatasetError(f"unknown builtin dataset {name!r}; expected one of "
                           f"{sorted(BUILTINS)}", "dataset")
    return BUILTINS[name]()
