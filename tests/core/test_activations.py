"""Activations: values against closed forms / math.erf, float64 gradient checks, dtype kept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.activations import ACTIVATIONS, erf, make_activation, softmax
from tests.core.gradcheck import assert_golden, check_elementwise, check_function, load_golden

ALL = sorted(ACTIVATIONS)


def _inputs(shape: tuple[int, ...] = (6, 7), seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 2.0
    # Keep clear of the kinks at 0 so central differences see one smooth piece.
    x[np.abs(x) < 1e-2] = 0.5
    return x


def test_erf_matches_math_erf_to_machine_precision() -> None:
    x = np.concatenate([np.linspace(-7.0, 7.0, 20001), [0.0, 1e-300, -1e-20, 30.0, -30.0]])
    reference = np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)
    err = np.abs(erf(x) - reference) / np.maximum(np.abs(reference), 1e-300)
    assert err.max() <= 1e-15


@pytest.mark.parametrize("name", ALL)
def test_gradient_matches_central_differences(name: str) -> None:
    act = ACTIVATIONS[name]()
    check = check_function if name == "softmax" else check_elementwise
    error = check(lambda x: act.forward(x), act.backward, _inputs())
    assert error <= 1e-7, f"{name}: {error}"


@pytest.mark.parametrize("name", ALL)
def test_in_place_equals_out_of_place(name: str) -> None:
    x = _inputs((5, 4, 3), seed=3)
    dy = np.random.default_rng(4).standard_normal(x.shape)
    ref = ACTIVATIONS[name]()
    y_ref, dx_ref = ref.forward(x).copy(), ref.backward(dy.copy()).copy()
    act = ACTIVATIONS[name]()
    buf, dbuf = x.copy(), dy.copy()
    y = act.forward(buf, out=buf)
    dx = act.backward(dbuf, out=dbuf)
    assert y is buf and dx is dbuf
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("name", ALL)
def test_float32_stays_float32(name: str) -> None:
    act = ACTIVATIONS[name]()
    x = _inputs().astype(np.float32)
    assert act.forward(x).dtype == np.float32
    assert act.backward(np.ones_like(x)).dtype == np.float32


def test_values_against_closed_forms() -> None:
    x = np.array([[-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 20.0, 25.0]])
    expect = {
        "relu": np.maximum(x, 0),
        "leaky_relu": np.where(x > 0, x, 0.01 * x),
        "elu": np.where(x > 0, x, np.expm1(x)),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
        "softplus": np.where(x > 20, x, np.log1p(np.exp(x))),
        "silu": x / (1 + np.exp(-x)),
        "gelu": x * 0.5 * np.frompyfunc(math.erfc, 1, 1)(-x / math.sqrt(2)).astype(float),
        "linear": x,
    }
    for name, want in expect.items():
        np.testing.assert_allclose(ACTIVATIONS[name]().forward(x), want, rtol=1e-14,
                                   atol=1e-300, err_msg=name)


def test_softmax_is_stable_and_normalised_along_axis_1() -> None:
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])
    y = softmax(x)
    np.testing.assert_allclose(y.sum(axis=1), [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(y[0], np.exp([-2.0, -1.0, 0.0]) / np.exp([-2.0, -1.0, 0.0]).sum())
    images = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(softmax(images).sum(axis=1), np.ones((2, 4, 4)), rtol=1e-14)


def test_sigmoid_does_not_overflow() -> None:
    with np.errstate(over="raise"):
        y = ACTIVATIONS["sigmoid"]().forward(np.array([-800.0, 800.0]))
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_alpha_is_read_from_specs() -> None:
    leaky = make_activation({"type": "leaky_relu", "alpha": 0.2})
    np.testing.assert_allclose(leaky.forward(np.array([-1.0, 2.0])), [-0.2, 2.0])
    elu = make_activation({"type": "elu", "alpha": 2.0})
    np.testing.assert_allclose(elu.forward(np.array([-1.0])), [2.0 * math.expm1(-1.0)])
    assert type(make_activation(None)).__name__ == "Linear"


GOLDEN = load_golden("layers_activations.json")


@pytest.mark.parametrize("name", ALL)
def test_matches_torch_golden(name: str) -> None:
    act = ACTIVATIONS[name]()
    want = GOLDEN["cases"][name]
    assert_golden(act.forward(np.array(GOLDEN["x"])), want["y"])
    assert_golden(act.backward(np.array(GOLDEN["dy"])), want["dx"])
