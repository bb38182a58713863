"""Dense, flatten, dropout and the activation layer: gradient checks and exact semantics."""

from __future__ import annotations

import numpy as np
import pytest

from core.activations import ACTIVATIONS
from core.layers import ActivationLayer, Dense, Dropout, Flatten
from tests.core.gradcheck import check_layer

F64 = np.float64


def _built(layer, input_shape, seed=0):  # type: ignore[no-untyped-def]
    layer.build(input_shape, np.random.default_rng(seed), F64)
    return layer


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_gradients_with_each_fused_activation(activation: str) -> None:
    layer = _built(Dense(5, ACTIVATIONS[activation]()), (7,))
    x = np.random.default_rng(1).standard_normal((4, 7))
    errors = check_layer(layer, x)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) <= 1e-7, errors


def test_dense_is_x_at_w_plus_b_with_weight_stored_fan_in_by_fan_out() -> None:
    layer = _built(Dense(3), (2,))
    assert layer.params["weight"].shape == (2, 3)
    layer.params["weight"][...] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    layer.params["bias"][...] = [0.5, -0.5, 0.0]
    y = layer.forward(np.array([[1.0, -1.0]]), training=True)
    np.testing.assert_array_equal(y, [[-2.5, -3.5, -3.0]])


def test_dense_writes_gradients_into_the_same_arrays() -> None:
    layer = _built(Dense(3, ACTIVATIONS["relu"]()), (2,))
    grad_w, grad_b = layer.grads["weight"], layer.grads["bias"]
    layer.forward(np.ones((4, 2)), training=True)
    layer.backward(np.ones((4, 3)))
    assert layer.grads["weight"] is grad_w and layer.grads["bias"] is grad_b


def test_first_layer_skips_the_input_gradient() -> None:
    layer = _built(Dense(3), (2,))
    layer.needs_input_grad = False
    layer.forward(np.ones((4, 2)), training=True)
    assert layer.backward(np.ones((4, 3))) is None
    np.testing.assert_array_equal(layer.grads["bias"], [4.0, 4.0, 4.0])


def test_default_init_is_torch_default_bounds() -> None:
    layer = Dense(300)
    layer.build((50,), np.random.default_rng(0), np.float32)
    bound = 1.0 / np.sqrt(50)
    assert layer.params["weight"].dtype == np.float32
    assert np.abs(layer.params["weight"]).max() <= bound
    assert np.abs(layer.params["weight"]).max() > 0.99 * bound
    assert np.abs(layer.params["bias"]).max() <= bound


def test_flatten_is_c_h_w_order_and_round_trips() -> None:
    layer = _built(Flatten(), (2, 3, 4))
    x = np.arange(48.0).reshape(2, 2, 3, 4)
    y = layer.forward(x, training=True)
    assert layer.output_shape == (24,)
    np.testing.assert_array_equal(y[1], np.arange(24.0, 48.0))
    np.testing.assert_array_equal(layer.backward(y), x)


def test_dropout_gradient_with_a_fixed_mask() -> None:
    layer = _built(Dropout(0.4), (6,))

    def same_mask() -> None:
        layer.rng = np.random.default_rng(123)

    x = np.random.default_rng(2).standard_normal((5, 6))
    errors = check_layer(layer, x, before_forward=same_mask)
    assert errors["input"] <= 1e-7


def test_dropout_is_inverted_and_identity_in_eval() -> None:
    layer = Dropout(0.25)
    layer.build((1000,), np.random.default_rng(5), np.float32)
    x = np.ones((20, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, np.float32(1.0 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    expected_mask = np.random.default_rng(5).random((20, 1000), dtype=np.float32) >= 0.25
    np.testing.assert_array_equal(y != 0, expected_mask)
    assert layer.forward(x, training=False) is x


def test_dropout_rate_one_gives_zeros() -> None:
    layer = _built(Dropout(1.0), (3,))
    np.testing.assert_array_equal(layer.forward(np.ones((2, 3)), training=True), np.zeros((2, 3)))


@pytest.mark.parametrize("activation", ["gelu", "softmax", "leaky_relu"])
def test_activation_layer_gradients(activation: str) -> None:
    layer = _built(ActivationLayer(ACTIVATIONS[activation]()), (3, 4))
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    assert check_layer(layer, x)["input"] <= 1e-7


def test_init_and_activation_given_as_spec_objects() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Fn:
        type: str
        alpha: float | None = None
        value: float | None = None

    layer = Dense.from_spec({"units": 2, "activation": Fn("leaky_relu", 0.5),
                             "weight_init": Fn("constant", value=0.5), "bias_init": None})
    layer.build((3,), np.random.default_rng(0), np.float64)
    np.testing.assert_array_equal(layer.params["weight"], np.full((3, 2), 0.5))
    assert layer.params["bias"].shape == (2,) and np.all(layer.params["bias"] == 0.0)
    y = layer.forward(np.array([[-1.0, -1.0, -1.0]]), training=False)
    np.testing.assert_array_equal(y, [[-0.75, -0.75]])
    torch_default = Dense.from_spec({"units": 4, "weight_init": Fn("torch_default")})
    torch_default.build((4,), np.random.default_rng(0), np.float64)
    assert np.all(torch_default.params["bias"] != 0.0)  # torch's U(-1/sqrt(fan_in), ...)
