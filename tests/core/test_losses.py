"""Losses: float64 gradient checks, hand-worked values, links, dtype kept."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.losses import LOSSES, make_loss
from tests.core.gradcheck import assert_golden, load_golden, numeric_grad, rel_error

RNG = np.random.default_rng(7)
LOGITS = RNG.standard_normal((6, 4)) * 2.0
LABELS = np.array([0, 3, 1, 1, 2, 3])
REGRESSION = RNG.standard_normal((6, 3))

CASES: list[tuple[Any, np.ndarray, np.ndarray]] = [
    ({"type": "cross_entropy"}, LOGITS, LABELS),
    ({"type": "cross_entropy", "label_smoothing": 0.1}, LOGITS, LABELS),
    ({"type": "cross_entropy", "class_weights": [0.5, 2.0, 1.0, 3.0]}, LOGITS, LABELS),
    ({"type": "cross_entropy", "label_smoothing": 0.2, "class_weights": [0.5, 2.0, 1.0, 3.0]},
     LOGITS, LABELS),
    ({"type": "binary_cross_entropy"}, LOGITS[:, :1], (LABELS % 2).astype(float)),
    ({"type": "binary_cross_entropy"}, LOGITS, RNG.integers(0, 2, LOGITS.shape).astype(float)),
    ({"type": "mse"}, REGRESSION, REGRESSION * 0.5 + 0.3),
    ({"type": "mse"}, REGRESSION[:, :1], REGRESSION[:, 1]),
    ({"type": "mae"}, REGRESSION, REGRESSION * 0.5 + 0.3),
    ({"type": "huber"}, REGRESSION * 2.0, REGRESSION * 0.5),
    ({"type": "huber", "delta": 0.3}, REGRESSION * 2.0, REGRESSION * 0.5),
]


@pytest.mark.parametrize(("spec", "outputs", "targets"), CASES,
                         ids=[str(sorted(c[0].items())) for c in CASES])
def test_gradient_matches_central_differences(spec: Any, outputs: np.ndarray,
                                              targets: np.ndarray) -> None:
    loss = make_loss(spec, np.float64)
    x = outputs.copy()
    loss.forward(x, targets)
    analytic = loss.backward().copy()
    numeric = numeric_grad(lambda: loss.forward(x, targets), x)
    assert analytic.shape == x.shape
    assert rel_error(analytic, numeric) <= 1e-7


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_cross_entropy_with_smoothing_and_weights_by_hand() -> None:
    # torch: (1-eps) * sum w[y] nll / sum w[y] + eps/C * sum_i sum_c w[c] (-logp) / sum w[y]
    w = np.array([0.5, 2.0, 1.0, 3.0])
    eps, c = 0.2, 4
    logp = _log_softmax(LOGITS)
    rows = np.arange(6)
    denom = w[LABELS].sum()
    want = ((1 - eps) * -(w[LABELS] * logp[rows, LABELS]).sum() / denom
            + eps / c * -(logp * w).sum() / denom)
    loss = make_loss({"type": "cross_entropy", "label_smoothing": eps, "class_weights": w},
                     np.float64)
    assert loss.forward(LOGITS, LABELS) == pytest.approx(want, rel=1e-14)


def test_plain_cross_entropy_value_and_gradient() -> None:
    loss = make_loss("cross_entropy", np.float64)
    value = loss.forward(np.array([[0.0, 0.0], [math.log(3.0), 0.0]]), np.array([0, 1]))
    assert value == pytest.approx((math.log(2.0) + math.log(4.0)) / 2, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[-0.25, 0.25], [0.375, -0.375]], rtol=1e-15)


def test_bce_is_stable_for_large_logits() -> None:
    loss = make_loss("binary_cross_entropy", np.float64)
    value = loss.forward(np.array([[1000.0], [-1000.0]]), np.array([0.0, 1.0]))
    assert value == pytest.approx(1000.0, rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[0.5], [-0.5]])


def test_mae_gradient_of_zero_difference_is_zero() -> None:
    loss = make_loss("mae", np.float64)
    assert loss.forward(np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])) == 1.0
    np.testing.assert_array_equal(loss.backward(), [[0.0, 0.5]])


def test_huber_values_on_both_sides_of_delta() -> None:
    loss = make_loss({"type": "huber", "delta": 1.0}, np.float64)
    # |d| = 0.5 -> 0.125 ; |d| = 3 -> 1 * (3 - 0.5) = 2.5
    assert loss.forward(np.array([[0.5, -3.0]]), np.zeros((1, 2))) == pytest.approx(1.3125)
    np.testing.assert_allclose(loss.backward(), [[0.25, -0.5]])


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_in_float32_out(name: str) -> None:
    loss = make_loss(name, np.float32)
    if name == "cross_entropy":
        outputs, targets = LOGITS.astype(np.float32), LABELS
    else:
        outputs, targets = LOGITS[:, :2].astype(np.float32), np.ones((6, 2))
    assert isinstance(loss.forward(outputs, targets), float)
    assert loss.backward().dtype == np.float32


def test_links() -> None:
    z = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(make_loss("cross_entropy").link(z), [[0.25, 0.75]])
    np.testing.assert_allclose(make_loss("binary_cross_entropy").link(z), [[0.5, 0.75]])
    np.testing.assert_array_equal(make_loss("mse").link(z), z)


@pytest.mark.parametrize("case", load_golden("layers_losses.json"),
                         ids=lambda c: str(sorted(c["spec"].items())))
def test_matches_torch_golden(case: dict) -> None:  # type: ignore[type-arg]
    loss = make_loss(case["spec"], np.float64)
    value = loss.forward(np.array(case["outputs"]), np.array(case["targets"]))
    assert value == pytest.approx(case["loss"], rel=1e-10)
    assert_golden(loss.backward(), case["grad"])
