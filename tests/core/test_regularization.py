"""L1/L2 penalties: hand-worked values, biases untouched, central-difference gradient check."""

from __future__ import annotations

import numpy as np
import pytest

from core.regularization import add_penalty_grads


def _net(dtype: str = "float64") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    params = {"0.weight": np.array([[1.0, -2.0], [0.5, 0.0]], dtype=dtype),
              "0.bias": np.array([3.0, -3.0], dtype=dtype),
              "2.weight": np.array([[-1.5], [4.0]], dtype=dtype)}
    grads = {n: np.full_like(p, 0.25) for n, p in params.items()}
    return params, grads


def test_l2_by_hand() -> None:
    params, grads = _net()
    penalty = add_penalty_grads(params, grads, ["0.weight", "2.weight"], l1=0.0, l2=0.1)
    # sum of squares: 1 + 4 + 0.25 + 0 + 2.25 + 16 = 23.5 -> 0.1 / 2 * 23.5
    assert penalty == pytest.approx(1.175, rel=1e-15)
    np.testing.assert_allclose(grads["0.weight"], [[0.35, 0.05], [0.3, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(grads["2.weight"], [[0.1], [0.65]], rtol=1e-15)
    assert grads["0.bias"].tolist() == [0.25, 0.25]


def test_l1_by_hand_with_sign_zero_at_zero() -> None:
    params, grads = _net()
    penalty = add_penalty_grads(params, grads, ["0.weight", "2.weight"], l1=0.01, l2=0.0)
    assert penalty == pytest.approx(0.01 * 9.0, rel=1e-15)  # |W| sums to 3.5 + 5.5
    np.testing.assert_allclose(grads["0.weight"], [[0.26, 0.24], [0.26, 0.25]], rtol=1e-15)
    assert grads["0.bias"].tolist() == [0.25, 0.25]


def test_zero_strengths_change_nothing() -> None:
    params, grads = _net()
    assert add_penalty_grads(params, grads, ["0.weight"], 0.0, 0.0) == 0.0
    assert all((g == 0.25).all() for g in grads.values())


def test_gradient_matches_central_differences() -> None:
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)}
    l1, l2 = 0.03, 0.2

    def penalty_of(p: dict[str, np.ndarray]) -> float:
        zeros = {n: np.zeros_like(a) for n, a in p.items()}
        return add_penalty_grads(p, zeros, ["w"], l1, l2)

    grads = {n: np.zeros_like(a) for n, a in params.items()}
    add_penalty_grads(params, grads, ["w"], l1, l2)
    h = 1e-6
    numeric = np.zeros_like(params["w"])
    for idx in np.ndindex(params["w"].shape):
        plus = {n: a.copy() for n, a in params.items()}
        minus = {n: a.copy() for n, a in params.items()}
        plus["w"][idx] += h
        minus["w"][idx] -= h
        numeric[idx] = (penalty_of(plus) - penalty_of(minus)) / (2 * h)
    rel = np.abs(numeric - grads["w"]) / np.maximum(np.abs(numeric), 1e-12)
    assert rel.max() <= 1e-7
    assert not grads["b"].any()


def test_float32_gradients_stay_float32() -> None:
    params, grads = _net("float32")
    add_penalty_grads(params, grads, ["0.weight", "2.weight"], l1=0.01, l2=0.1)
    assert all(g.dtype == np.float32 for g in grads.values())
    np.testing.assert_allclose(grads["2.weight"], [[0.1 - 0.01], [0.65 + 0.01]], rtol=1e-6)


def test_negative_strength_is_refused() -> None:
    params, grads = _net()
    with pytest.raises(ValueError, match="non-negative"):
        add_penalty_grads(params, grads, ["0.weight"], l1=-0.1, l2=0.0)
