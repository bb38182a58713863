"""Batch norm: torch's training/eval semantics and float64 gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

from core.activations import ACTIVATIONS
from core.layers import BatchNorm
from tests.core.gradcheck import assert_golden, check_layer, load_golden


def _layer(shape: tuple[int, ...], activation: str = "linear") -> BatchNorm:
    layer = BatchNorm(activation=ACTIVATIONS[activation]())
    layer.build(shape, np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(9)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape[0])
    layer.params["beta"][...] = rng.standard_normal(shape[0])
    return layer


@pytest.mark.parametrize("shape", [(5,), (3, 4, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients(shape: tuple[int, ...], training: bool) -> None:
    layer = _layer(shape, "tanh")
    layer.buffers["running_mean"][...] = 0.3
    layer.buffers["running_var"][...] = 2.0
    mean, var = layer.buffers["running_mean"].copy(), layer.buffers["running_var"].copy()

    def keep_running_stats() -> None:
        layer.buffers["running_mean"][...] = mean
        layer.buffers["running_var"][...] = var

    x = np.random.default_rng(1).standard_normal((6, *shape)) * 2.0 + 1.0
    errors = check_layer(layer, x, training=training, before_forward=keep_running_stats)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) <= 1e-7, errors


def test_training_statistics_and_running_update_as_torch() -> None:
    layer = _layer((2,))
    x = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 60.0]])
    y = layer.forward(x, training=True)
    mean, var = x.mean(axis=0), x.var(axis=0)
    want = (x - mean) / np.sqrt(var + 1e-5) * layer.params["gamma"] + layer.params["beta"]
    np.testing.assert_allclose(y, want, rtol=1e-14)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * mean, rtol=1e-15)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * x.var(axis=0, ddof=1),
                               rtol=1e-15)
    running_mean = layer.buffers["running_mean"].copy()
    y_eval = layer.forward(x, training=False)
    want_eval = ((x - running_mean) / np.sqrt(layer.buffers["running_var"] + 1e-5)
                 * layer.params["gamma"] + layer.params["beta"])
    np.testing.assert_allclose(y_eval, want_eval, rtol=1e-14)
    np.testing.assert_array_equal(layer.buffers["running_mean"], running_mean)


def test_conv_inputs_normalise_per_channel_over_n_h_w() -> None:
    layer = BatchNorm()
    layer.build((3, 4, 5), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(2).standard_normal((8, 3, 4, 5)).astype(np.float32) * 3 + 2
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer.buffers["running_var"].dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)


def test_a_single_row_batch_trains_without_touching_running_stats() -> None:
    # torch raises here; a ragged last batch of one row must not fail a job instead.
    layer = _layer((3,))
    y = layer.forward(np.array([[1.0, -2.0, 5.0]]), training=True)
    np.testing.assert_allclose(y, layer.params["beta"][None, :], rtol=1e-15)
    np.testing.assert_array_equal(layer.buffers["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(layer.buffers["running_var"], np.ones(3))
    dx = layer.backward(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(dx, np.zeros((1, 3)), atol=1e-12)
    np.testing.assert_array_equal(layer.grads["beta"], [1.0, 2.0, 3.0])


def test_fan_based_init_for_vectors_is_a_spec_error() -> None:
    from core.errors import SpecError

    with pytest.raises(SpecError, match="weight_init"):
        BatchNorm(weight_init="he_normal").build((3,), np.random.default_rng(0), np.float32)


@pytest.mark.parametrize("case", load_golden("layers_batchnorm.json"),
                         ids=lambda c: f"ndim{np.ndim(c['x'])}")
def test_matches_torch_golden(case: dict) -> None:  # type: ignore[type-arg]
    x = np.array(case["x"])
    layer = BatchNorm()
    layer.build(x.shape[1:], np.random.default_rng(0), np.float64)
    layer.params["gamma"][...] = case["gamma"]
    layer.params["beta"][...] = case["beta"]
    train = case["train"]
    assert_golden(layer.forward(x, training=True), train["y"])
    assert_golden(layer.backward(np.array(case["dy"])), train["dx"])
    assert_golden(layer.grads["gamma"], train["dgamma"])
    assert_golden(layer.grads["beta"], train["dbeta"])
    assert_golden(layer.buffers["running_mean"], train["running_mean"])
    assert_golden(layer.buffers["running_var"], train["running_var"])
    assert_golden(layer.forward(np.array(case["x_eval"]), training=False), case["y_eval"])
    assert_golden(layer.backward(np.array(case["dy"])), case["dx_eval"])
