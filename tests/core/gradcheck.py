"""Central-difference gradient checks in float64 for layers, activations and losses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
STEP = 1e-4


def numeric_grad(f: Callable[[], float], x: Array, step: float = STEP) -> Array:
    """d f / d x by fourth-order central differences, perturbing ``x`` in place.

    (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h: truncation error O(h^4), so a step
    of 1e-4 keeps both truncation (~1e-16) and rounding (~1e-16 |f| / h) far below 1e-7.
    """
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so the perturbation reaches f"
    for i in range(flat.size):
        keep = flat[i]
        values = []
        for offset in (2.0 * step, step, -step, -2.0 * step):
            flat[i] = keep + offset
            values.append(f())
        flat[i] = keep
        gflat[i] = (-values[0] + 8.0 * values[1] - 8.0 * values[2] + values[3]) / (12.0 * step)
    return grad


def rel_error(analytic: Array, numeric: Array) -> float:
    """max_i |a_i - n_i| / max(|a_i| + |n_i|, 1e-3 * max_j |n_j|, 1e-12).

    Entries a thousand times smaller than the largest are measured against that floor: a
    central difference of a summed loss carries ~1e-16 |L| / step of absolute noise, which
    would otherwise swamp the relative error of a near-zero gradient entry.
    """
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    assert a.shape == n.shape, (a.shape, n.shape)
    if a.size == 0:
        return 0.0
    floor = max(1e-3 * float(np.abs(n).max()), 1e-12)
    scale = np.maximum(np.abs(a) + np.abs(n), floor)
    return float((np.abs(a - n) / scale).max())


def check_layer(layer: Any, x: Array, *, training: bool = True,
                before_forward: Callable[[], None] | None = None,
                seed: int = 0) -> dict[str, float]:
    """Relative errors of dL/dx and dL/dparams for L = sum(forward(x) * R), R fixed random."""
    rng = np.random.default_rng(seed)

    def run() -> Array:
        if before_forward is not None:
            before_forward()
        out: Array = layer.forward(x, training)
        return out

    weights = rng.standard_normal(run().shape)

    def loss() -> float:
        return float(np.sum(run() * weights))

    run()
    dx = layer.backward(weights.copy())
    analytic = {"input": np.array(dx, copy=True)}
    analytic.update({k: g.copy() for k, g in layer.grads.items()})
    errors = {"input": rel_error(analytic["input"], numeric_grad(loss, x))}
    for name, param in layer.params.items():
        errors[name] = rel_error(analytic[name], numeric_grad(loss, param))
    return errors


def check_elementwise(forward: Callable[[Array], Array],
                      backward: Callable[[Array], Array], x: Array,
                      step: float = STEP) -> float:
    """Relative error of an element-wise function's derivative, entry by entry.

    Differencing each entry on its own (vectorised) avoids the summed-loss noise, so even
    derivatives of 1e-7 are checked to full relative accuracy.
    """
    numeric = (-forward(x + 2.0 * step) + 8.0 * forward(x + step)
               - 8.0 * forward(x - step) + forward(x - 2.0 * step)) / (12.0 * step)
    forward(x)
    analytic = np.array(backward(np.ones_like(x)), copy=True)
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-300)
    both_zero = (analytic == 0.0) & (numeric == 0.0)
    return float(np.where(both_zero, 0.0, np.abs(analytic - numeric) / scale).max())


def check_function(forward: Callable[[Array], Array], backward: Callable[[Array], Array],
                   x: Array, seed: int = 0) -> float:
    """Relative error of a function's backward (full Jacobian) against central differences."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(forward(x).shape)

    def loss() -> float:
        return float(np.sum(forward(x) * weights))

    forward(x)
    analytic = np.array(backward(weights.copy()), copy=True)
    return rel_error(analytic, numeric_grad(loss, x))


GOLDEN = Path(__file__).resolve().parent / "golden"


def load_golden(name: str) -> Any:
    """The ``cases`` of tests/core/golden/<name> (written by benchmarks/golden/*.py)."""
    return json.loads((GOLDEN / name).read_text())["cases"]


def assert_golden(actual: Any, expected: Any, rtol: float = 1e-10) -> None:
    """Relative agreement to ``rtol``; entries near 0 are judged against rtol * max|expected|."""
    want = np.asarray(expected, dtype=np.float64)
    got = np.asarray(actual, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    atol = rtol * float(np.abs(want).max(initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
