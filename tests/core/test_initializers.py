"""Initializers: torch's fans and bounds exactly (golden), statistics of large draws, dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.initializers import FAN_SCALES, INITIALIZERS, fan_in_fan_out, initialize
from core.layers import Conv2D, Dense
from tests.core.gradcheck import load_golden

GOLDEN = load_golden("layers_init.json")
FAN_RULES = sorted(name for name in FAN_SCALES if name != "torch_default")


def _our_shape(case: dict) -> tuple[int, ...]:  # type: ignore[type-arg]
    shape = tuple(case["torch_shape"])
    # Our dense weight is (fan_in, fan_out): torch's (out, in) transposed.
    return (shape[1], shape[0]) if case["layer"] == "dense" else shape


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['layer']}{c['torch_shape']}")
def test_fans_and_scales_equal_torch(case: dict) -> None:  # type: ignore[type-arg]
    fan_in, fan_out = fan_in_fan_out(case["torch_shape"])
    assert (fan_in, fan_out) == (case["fan_in"], case["fan_out"])
    for name in FAN_RULES:
        want = case["rules"][name]
        assert want["kind"] == ("normal_" if name.endswith("normal") else "uniform_")
        assert FAN_SCALES[name](fan_in, fan_out) == pytest.approx(want["scale"], rel=1e-12)
    assert FAN_SCALES["torch_default"](fan_in, fan_out) == pytest.approx(
        case["torch_default"]["weight_bound"], rel=1e-12)
    assert 1.0 / math.sqrt(fan_in) == pytest.approx(case["torch_default"]["bias_bound"],
                                                    rel=1e-15)


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['layer']}{c['torch_shape']}")
def test_layers_draw_within_torch_default_bounds(case: dict) -> None:  # type: ignore[type-arg]
    shape = tuple(case["torch_shape"])
    if case["layer"] == "dense":
        layer = Dense(shape[0])
        layer.build((shape[1],), np.random.default_rng(0), np.float64)
    else:
        layer = Conv2D(shape[0], shape[2:])
        layer.build((shape[1], 12, 12), np.random.default_rng(0), np.float64)
    assert layer.params["weight"].shape == _our_shape(case)
    w_bound = case["torch_default"]["weight_bound"]
    b_bound = case["torch_default"]["bias_bound"]
    assert np.abs(layer.params["weight"]).max() <= w_bound
    assert np.abs(layer.params["weight"]).max() >= 0.95 * w_bound
    assert np.abs(layer.params["bias"]).max() <= b_bound


@pytest.mark.parametrize("name", FAN_RULES)
def test_large_draws_match_torch_bound_or_std(name: str) -> None:
    case = GOLDEN[0]  # dense 784 -> 256
    scale = case["rules"][name]["scale"]
    shape = _our_shape(case)
    w = initialize(name, "zeros", shape, case["fan_in"], case["fan_out"],
                   np.random.default_rng(1), np.float64)
    assert w.shape == shape
    n = w.size
    assert abs(w.mean()) < 5 * scale / math.sqrt(n)
    if name.endswith("uniform"):
        assert np.abs(w).max() <= scale
        assert np.abs(w).max() > scale * (1 - 1e-4)
        assert w.std() == pytest.approx(scale / math.sqrt(3), rel=0.01)
    else:
        assert w.std() == pytest.approx(scale, rel=0.01)
        assert np.abs(w).max() > 4 * scale  # not truncated


def test_plain_initializers_and_their_arguments() -> None:
    rng = np.random.default_rng(2)
    assert np.all(initialize("zeros", "ones", (3, 2), 2, 3, rng, np.float32) == 0)
    assert np.all(initialize(None, "ones", (3, 2), 2, 3, rng, np.float32) == 1)
    const = initialize({"type": "constant", "value": 0.25}, "zeros", (4,), 1, 1, rng, np.float64)
    assert np.all(const == 0.25)
    u = initialize({"type": "uniform", "a": -2.0, "b": 3.0}, "zeros", (200_000,), 1, 1, rng,
                   np.float64)
    assert u.min() >= -2.0 and u.max() < 3.0 and u.mean() == pytest.approx(0.5, abs=0.02)
    z = initialize({"type": "normal", "mean": 1.0, "std": 0.5}, "zeros", (200_000,), 1, 1,
                   rng, np.float64)
    assert z.mean() == pytest.approx(1.0, abs=0.01) and z.std() == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_draws_in_the_run_dtype(name: str) -> None:
    w = INITIALIZERS[name]((30, 20), 30, 20, np.random.default_rng(0), np.float32)
    assert w.dtype == np.float32 and w.shape == (30, 20)


def test_fans_need_two_dimensions() -> None:
    with pytest.raises(ValueError, match="fewer than 2"):
        fan_in_fan_out((5,))


def test_unknown_initializer_is_a_spec_error() -> None:
    from core.errors import SpecError

    with pytest.raises(SpecError, match="xavier"):
        initialize("xavier", "zeros", (2, 2), 2, 2, np.random.default_rng(0), np.float32)
