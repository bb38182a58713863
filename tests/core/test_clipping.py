"""Global-norm clipping: hand-worked norms and torch 2.13's clip_grad_norm_ on golden grads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.clipping import clip_grad_norm

GOLDEN = json.loads((Path(__file__).parent / "golden" / "optim_clipping.json").read_text())


def test_three_four_twelve_by_hand() -> None:
    grads = {"a": np.array([[3.0], [4.0]]), "b": np.array([12.0])}  # global norm 13
    total = clip_grad_norm(grads, max_norm=6.5)
    coef = 6.5 / (13.0 + 1e-6)
    assert total == 13.0
    np.testing.assert_allclose(grads["a"].ravel(), [3 * coef, 4 * coef], rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [12 * coef], rtol=1e-15)


def test_below_the_limit_nothing_changes() -> None:
    grads = {"a": np.array([3.0, 4.0])}
    assert clip_grad_norm(grads, max_norm=5.0 + 2e-6) == 5.0
    assert grads["a"].tolist() == [3.0, 4.0]


def test_max_norm_and_one_norm_by_hand() -> None:
    grads = {"a": np.array([-7.0, 2.0]), "b": np.array([5.0])}
    assert clip_grad_norm(grads, max_norm=100.0, norm_type=math.inf) == 7.0
    assert clip_grad_norm(grads, max_norm=100.0, norm_type=1) == 14.0
    clip_grad_norm(grads, max_norm=7.0, norm_type=math.inf)
    np.testing.assert_allclose(grads["a"], [-7.0 * 7 / (7 + 1e-6), 2.0 * 7 / (7 + 1e-6)])


def test_float32_gradients_stay_float32_without_float64_rounding() -> None:
    rng = np.random.default_rng(1)
    grads = {"all": rng.normal(size=10_000).astype(np.float32)}
    expected_total = np.float32(np.sqrt(np.sum(grads["all"].astype(np.float64) ** 2)))
    before = grads["all"].copy()
    total = clip_grad_norm(grads, max_norm=1.0)
    assert grads["all"].dtype == np.float32
    assert total == pytest.approx(float(expected_total), rel=1e-6)
    coef = np.float32(1.0) / (np.float32(total) + np.float32(1e-6))
    assert np.array_equal(grads["all"], before * coef)


@pytest.mark.parametrize("case", GOLDEN["cases"],
                         ids=[f"{c['dtype']}-p{c['norm_type']}-max{c['max_norm']}"
                              for c in GOLDEN["cases"]])
def test_matches_torch_clip_grad_norm(case: dict[str, Any]) -> None:
    dtype = np.dtype(case["dtype"])
    grads = {n: np.array(v, dtype=dtype) for n, v in GOLDEN["grads"].items()}
    norm_type = math.inf if case["norm_type"] == "inf" else case["norm_type"]
    total = clip_grad_norm(grads, case["max_norm"], norm_type)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert total == pytest.approx(case["total_norm"], rel=rtol)
    for name, clipped in case["clipped"].items():
        assert grads[name].dtype == dtype
        np.testing.assert_allclose(grads[name], clipped, rtol=rtol, atol=0.0)


def test_non_finite_norms_behave_as_torch() -> None:
    grads = {"a": np.array([np.nan, 1.0]), "b": np.array([2.0])}
    assert math.isnan(clip_grad_norm(grads, 1.0))
    assert np.isnan(grads["a"]).all() and np.isnan(grads["b"]).all()
    grads = {"a": np.array([np.inf, 1.0]), "b": np.array([2.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    assert math.isnan(grads["a"][0]) and grads["a"][1] == 0.0 and grads["b"].tolist() == [0.0]


def test_bad_norm_type_is_refused_and_no_grads_is_zero() -> None:
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm({"a": np.ones(2)}, 1.0, norm_type=0)
    assert clip_grad_norm({}, 1.0) == 0.0
