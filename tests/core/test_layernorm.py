"""layer_norm: torch.nn.LayerNorm over a whole sample, gradient-checked and golden-tested."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from core.checkpoint import export_weights_npz, load_checkpoint
from core.errors import SpecError, SpecErrors
from core.layers import LayerNorm
from core.spec import Spec
from core.spec.layers import LayerNormSpec
from core.training import train
from tests.core.gradcheck import assert_golden, check_layer, load_golden


def _layer(shape: tuple[int, ...], affine: bool = True, eps: float = 1e-5) -> LayerNorm:
    layer = LayerNorm(eps, affine)
    layer.build(shape, np.random.default_rng(0), np.float64)
    if affine:
        rng = np.random.default_rng(9)
        layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape)
        layer.params["beta"][...] = rng.standard_normal(shape)
    return layer


@pytest.mark.parametrize("shape", [(5,), (3, 4, 3)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_gradients(shape: tuple[int, ...], affine: bool, training: bool) -> None:
    layer = _layer(shape, affine)
    x = np.random.default_rng(1).standard_normal((6, *shape)) * 2.0 + 1.0
    errors = check_layer(layer, x, training=training)
    assert set(errors) == ({"input", "gamma", "beta"} if affine else {"input"})
    assert max(errors.values()) <= 1e-7, errors


def test_each_row_is_normalised_by_its_own_biased_statistics() -> None:
    layer = _layer((3,), affine=False)
    x = np.array([[1.0, 2.0, 6.0], [-4.0, 0.0, 4.0]])
    y = layer.forward(x, training=True)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-14)
    np.testing.assert_array_equal(layer.forward(x, training=False), y)  # no running stats
    assert layer.params == {} and layer.buffers == {}


def test_gamma_beta_start_at_ones_and_zeros_with_the_sample_shape() -> None:
    layer = LayerNorm()
    layer.build((2, 3, 4), np.random.default_rng(0), np.float32)
    np.testing.assert_array_equal(layer.params["gamma"], np.ones((2, 3, 4), np.float32))
    np.testing.assert_array_equal(layer.params["beta"], np.zeros((2, 3, 4), np.float32))
    x = np.random.default_rng(2).standard_normal((5, 2, 3, 4)).astype(np.float32) * 3 + 2
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.reshape(5, -1).mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(y.reshape(5, -1).var(axis=1), 1.0, rtol=1e-4)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_first_layer_skips_the_input_gradient_but_sets_gamma_beta() -> None:
    layer = _layer((4,))
    layer.needs_input_grad = False
    x = np.random.default_rng(3).standard_normal((3, 4))
    layer.forward(x, training=True)
    assert layer.backward(np.ones((3, 4))) is None
    np.testing.assert_array_equal(layer.grads["beta"], [3.0, 3.0, 3.0, 3.0])


@pytest.mark.parametrize("case", load_golden("layers_layernorm.json"))
def test_matches_torch(case: dict[str, Any]) -> None:
    x = np.array(case["x"])
    affine = case["elementwise_affine"]
    layer = LayerNorm(case["eps"], affine)
    layer.build(x.shape[1:], np.random.default_rng(0), np.float64)
    if affine:
        layer.params["gamma"][...] = case["gamma"]
        layer.params["beta"][...] = case["beta"]
    assert_golden(layer.forward(x, training=True), case["y"])
    assert_golden(layer.backward(np.array(case["dy"])), case["dx"])
    if affine:
        assert_golden(layer.grads["gamma"], case["dgamma"])
        assert_golden(layer.grads["beta"], case["dbeta"])


def test_spec_defaults_round_trip_and_match_the_layer() -> None:
    spec = Spec.from_dict({"model": {"layers": [
        {"type": "dense", "units": 4}, {"type": "layer_norm"}, {"type": "dense", "units": 2}]}})
    norm = spec.model.layers[1]
    assert norm == LayerNormSpec(eps=1e-5, elementwise_affine=True)
    assert spec.model.to_dict()["layers"][1] == {"type": "layer_norm", "eps": 1e-5,
                                                 "elementwise_affine": True}
    assert Spec.from_dict(spec.to_dict()) == spec
    # the layer's torch-mirroring constructor defaults are the spec's declared ones
    built = LayerNorm.from_spec({"type": "layer_norm"})
    assert (built.eps, built.elementwise_affine) == (norm.eps, norm.elementwise_affine)


@pytest.mark.parametrize(("layer", "field", "fragment"), [
    ({"type": "layer_norm", "eps": 0}, "model.layers[1].eps", "must be a positive number"),
    ({"type": "layer_norm", "elementwise_affine": 1}, "model.layers[1].elementwise_affine",
     "must be true or false"),
    ({"type": "layer_norm", "normalized_shape": [4]}, "model.layers[1].normalized_shape",
     "unknown key"),
])
def test_bad_fields_name_the_layer(layer: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 4}, layer,
                                             {"type": "dense", "units": 2}]}})
    errors = info.value.errors if isinstance(info.value, SpecErrors) else [info.value]
    assert [e.field for e in errors] == [field]
    assert fragment in errors[0].message


IMAGE_SPEC: dict[str, Any] = {
    "model": {"layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same"},
        {"type": "layer_norm"},
        {"type": "flatten"},
        {"type": "dense", "units": 6, "activation": "relu"},
        {"type": "layer_norm", "eps": 1e-3},
        {"type": "dense", "units": 3},
    ]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 2, "batch_size": 8, "validation_split": 0.25},
}


def test_trains_checkpoints_and_predicts_unchanged_through_weights_npz() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 1, 5, 5)), rng.integers(0, 3, 40)
    result = train(IMAGE_SPEC, X, y)
    expected = result.network.predict(X)
    with np.load(io.BytesIO(result.weights_npz()), allow_pickle=False) as f:
        names = set(f.files)
        gamma = f["1.gamma"]
    # "{layer index}.{name}", as the README says: gamma/beta of the sample's shape
    assert {"1.gamma", "1.beta", "4.gamma", "4.beta"} <= names
    assert gamma.shape == (2, 5, 5)
    assert not np.array_equal(gamma, np.ones((2, 5, 5)))  # trained
    assert "1.gamma" not in result.network.weight_names  # no L1/L2 on norm scales
    for source in (result.checkpoint(), result.weights_npz()):
        loaded = load_checkpoint(source, loss="cross_entropy")  # shape from __input_mean__
        assert loaded.input_shape == (1, 5, 5)
        np.testing.assert_array_equal(loaded.predict(X), expected)


def test_numpy_only_inference_from_weights_npz() -> None:
    """The README's recipe (x @ W + b per dense layer) extends to layer_norm's gamma/beta."""
    spec = {"model": {"layers": [{"type": "dense", "units": 5, "activation": "tanh"},
                                 {"type": "layer_norm"}, {"type": "dense", "units": 2}]},
            "loss": {"type": "mse"}, "training": {"epochs": 3, "batch_size": 4}}
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((24, 3)), rng.standard_normal((24, 2))
    network = train(spec, X, y).network
    with np.load(io.BytesIO(export_weights_npz(network)), allow_pickle=False) as w:
        x = (X - w["__input_mean__"]) / w["__input_std__"]
        h = np.tanh(x @ w["0.weight"] + w["0.bias"])
        h = (h - h.mean(axis=1, keepdims=True)) / np.sqrt(h.var(axis=1, keepdims=True) + 1e-5)
        h = h * w["1.gamma"] + w["1.beta"]
        out = h @ w["2.weight"] + w["2.bias"]
    np.testing.assert_allclose(out, network.predict(X), rtol=1e-5, atol=1e-6)
