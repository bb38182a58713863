"""Network and build_network: flat parameter views, end-to-end gradients, predict, seeds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.losses import make_loss
from core.network import build_network
from tests.core.gradcheck import numeric_grad, rel_error

MLP = {"layers": [
    {"type": "dense", "units": 6, "activation": "tanh", "weight_init": "he_normal"},
    {"type": "dropout", "rate": 0.3},
    {"type": "dense", "units": 5, "activation": "gelu"},
    {"type": "dense", "units": 3},
]}


def test_params_are_views_into_one_flat_array() -> None:
    net = build_network(MLP, (4,), seed=0)
    assert list(net.params) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    assert net.flat_params.size == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3 == net.num_params
    assert net.flat_params.dtype == np.float32
    for name, array in net.params.items():
        assert np.shares_memory(array, net.flat_params), name
        assert np.shares_memory(net.grads[name], net.flat_grads), name
    net.flat_params[:] = 0.5
    np.testing.assert_array_equal(net.layers[3].params["bias"], [0.5, 0.5, 0.5])
    assert net.weight_names == ["0.weight", "2.weight", "3.weight"]
    assert (net.input_shape, net.loss_name, net.dtype) == ((4,), "cross_entropy", np.float32)


def test_same_seed_same_bytes_other_seed_other_weights() -> None:
    a, b, c = (build_network(MLP, (4,), seed=s) for s in (3, 3, 4))
    assert a.flat_params.tobytes() == b.flat_params.tobytes()
    assert a.flat_params.tobytes() != c.flat_params.tobytes()


def test_whole_network_gradient_in_float64() -> None:
    net = build_network(MLP, (4,), seed=1, dtype="float64")
    loss = make_loss({"type": "cross_entropy", "label_smoothing": 0.1}, np.float64)
    x = np.random.default_rng(2).standard_normal((8, 4))
    y = np.random.default_rng(3).integers(0, 3, 8)
    state = net.rng.bit_generator.state

    def value() -> float:
        net.rng.bit_generator.state = state  # the same dropout mask every evaluation
        return loss.forward(net.forward(x, training=True), y)

    value()
    assert net.backward(loss.backward()) is None
    analytic = net.flat_grads.copy()
    numeric = numeric_grad(value, net.flat_params)
    assert rel_error(analytic, numeric) <= 1e-7


def test_final_softmax_is_fused_into_cross_entropy() -> None:
    spec = {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]}
    net = build_network(spec, (2,), seed=0, dtype="float64")
    x = np.array([[1.0, -2.0]])
    logits = x @ net.params["0.weight"] + net.params["0.bias"]
    np.testing.assert_allclose(net.forward(x, training=False), logits, rtol=1e-15)
    probs = net.predict(x)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(), rtol=1e-14)


def test_predict_batches_preprocesses_and_applies_the_link() -> None:
    class Scale:
        def apply(self, X: np.ndarray) -> np.ndarray:
            return X * 2.0

    net = build_network({"layers": [{"type": "dense", "units": 1}]}, (3,), seed=0,
                        dtype="float64", loss="binary_cross_entropy")
    net.preprocessing = Scale()
    X = np.random.default_rng(0).standard_normal((2500, 3))
    out = net.predict(X, batch_size=1000)
    z = (X * 2.0) @ net.params["0.weight"] + net.params["0.bias"]
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-z)), rtol=1e-14)


def test_images_without_channel_axis_get_one_channel() -> None:
    spec = {"layers": [{"type": "flatten"}, {"type": "dense", "units": 2}]}
    net = build_network(spec, (4, 5), seed=0, loss="mse")
    assert net.input_shape == (1, 4, 5)
    assert net.forward(np.ones((3, 4, 5)), training=False).shape == (3, 2)


def test_set_params_copies_into_the_views() -> None:
    net = build_network(MLP, (4,), seed=0)
    values = {k: np.full(v.shape, 0.25) for k, v in net.params.items()}
    view = net.params["0.weight"]
    net.set_params(values)
    assert net.params["0.weight"] is view
    assert np.all(net.flat_params == np.float32(0.25))
    with pytest.raises(ValueError, match=r"0\.bias"):
        net.set_params({**values, "0.bias": np.zeros(2)})


def test_float32_training_step_stays_float32() -> None:
    net = build_network(MLP, (4,), seed=0)
    loss = make_loss("cross_entropy", np.float32)
    out = net.forward(np.random.default_rng(0).standard_normal((5, 4)), training=True)
    assert out.dtype == np.float32
    loss.forward(out, np.array([0, 1, 2, 0, 1]))
    net.backward(loss.backward())
    assert net.flat_grads.dtype == np.float32
    assert np.abs(net.flat_grads).sum() > 0.0


def test_unknown_layer_names_its_path() -> None:
    from core.errors import SpecError

    with pytest.raises(SpecError, match=r"model\.layers\[1\]\.type"):
        build_network({"layers": [{"type": "dense", "units": 2}, {"type": "lstm"}]}, (3,), 0)
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.units"):
        build_network({"layers": [{"type": "dense", "units": 2}]}, (1, 3, 3), 0)


def test_small_cnn_gradient_end_to_end_in_float64() -> None:
    spec = {"layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "elu"},
        {"type": "batch_norm"},
        {"type": "max_pool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 4, "kernel_size": 2, "stride": 2, "activation": "tanh"},
        {"type": "avg_pool2d", "pool_size": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ]}
    net = build_network(spec, (6, 8), seed=3, dtype="float64")
    assert net.shapes == [(3, 6, 8), (3, 6, 8), (3, 3, 4), (4, 1, 2), (4, 1, 2), (8,), (3,)]
    loss = make_loss({"type": "cross_entropy", "class_weights": [1.0, 2.0, 0.5]}, np.float64)
    x = np.random.default_rng(4).standard_normal((5, 6, 8))
    y = np.array([0, 1, 2, 1, 0])
    running = {k: v.copy() for k, v in net.buffers.items()}

    def value() -> float:
        net.set_params(running, strict=False)
        return loss.forward(net.forward(x, training=True), y)

    value()
    net.backward(loss.backward())
    analytic = net.flat_grads.copy()
    assert rel_error(analytic, numeric_grad(value, net.flat_params)) <= 1e-7


def test_layer_norm_network_gradient_end_to_end_in_float64() -> None:
    spec = {"layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "tanh"},
        {"type": "layer_norm"},
        {"type": "flatten"},
        {"type": "dense", "units": 4, "activation": "gelu"},
        {"type": "layer_norm", "eps": 1e-3},
        {"type": "dense", "units": 3},
    ]}
    net = build_network(spec, (1, 5, 4), seed=5, dtype="float64")
    assert list(net.params)[2:4] == ["1.gamma", "1.beta"]
    assert net.params["1.gamma"].shape == (2, 3, 2)
    assert net.weight_names == ["0.weight", "3.weight", "5.weight"]
    net.flat_params[:] += np.random.default_rng(6).normal(0.0, 0.3, net.num_params)
    loss = make_loss("cross_entropy", np.float64)
    x = np.random.default_rng(7).standard_normal((6, 1, 5, 4))
    y = np.array([0, 1, 2, 1, 0, 2])

    def value() -> float:
        return loss.forward(net.forward(x, training=True), y)

    value()
    net.backward(loss.backward())
    analytic = net.flat_grads.copy()
    assert rel_error(analytic, numeric_grad(value, net.flat_params)) <= 1e-7


def test_large_eval_batches_run_in_chunks_with_the_same_result() -> None:
    from core.network import EVAL_CHUNK

    net = build_network(MLP, (4,), seed=0, dtype="float64")
    X = np.random.default_rng(1).standard_normal((EVAL_CHUNK * 2 + 7, 4))
    whole = net.forward(X, training=False)
    assert whole.shape == (X.shape[0], 3)
    pieces = [net.forward(X[i:i + 100], training=False).copy() for i in range(0, len(X), 100)]
    np.testing.assert_allclose(whole, np.concatenate(pieces), rtol=1e-13)


@pytest.mark.parametrize("loss_name", ["cross_entropy", "binary_cross_entropy", "mse", "huber"])
def test_every_layer_keeps_float32(loss_name: str) -> None:
    spec = {"layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1, "activation": "gelu"},
        {"type": "batch_norm", "activation": "silu"},
        {"type": "max_pool2d", "pool_size": 2},
        {"type": "layer_norm"},
        {"type": "conv2d", "filters": 2, "kernel_size": 2, "stride": 2, "activation": "elu"},
        {"type": "avg_pool2d", "pool_size": 1},
        {"type": "dropout", "rate": 0.5},
        {"type": "flatten"},
        {"type": "dense", "units": 5, "activation": {"type": "leaky_relu", "alpha": 0.1}},
        {"type": "batch_norm"},
        {"type": "layer_norm", "elementwise_affine": False},
        {"type": "activation", "activation": "softplus"},
        {"type": "dense", "units": 3, "activation": "sigmoid"},
    ]}
    net = build_network(spec, (1, 8, 8), seed=0, loss=loss_name)
    loss = make_loss(loss_name, np.float32)
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    out = net.forward(x, training=True)
    assert out.dtype == np.float32
    targets = np.array([0, 1, 2, 1]) if loss_name == "cross_entropy" else np.ones((4, 3))
    loss.forward(out, targets)
    net.backward(loss.backward())
    arrays = {**net.params, **net.grads, **net.buffers}
    assert {a.dtype for a in arrays.values()} == {np.dtype(np.float32)}
    assert net.predict(x).dtype == np.float32


def test_dropout_masks_follow_the_network_rng() -> None:
    net = build_network(MLP, (4,), seed=0)
    x = np.ones((3, 4), dtype=np.float32)
    net.rng.bit_generator.state = np.random.default_rng(42).bit_generator.state
    first = net.forward(x, training=True).copy()
    net.rng = np.random.default_rng(42)
    np.testing.assert_array_equal(net.forward(x, training=True), first)
    assert net.layers[1].rng is net.rng


def _minimal_layers() -> list[tuple[dict[str, Any], tuple[int, ...]]]:
    from core.spec import LAYER_SPECS

    cases = []
    for name, cls in LAYER_SPECS.items():
        layer = {"type": name, **{p.name: p.example for p in cls.spec_params if p.required}}
        for rank in cls.input_ranks:
            cases.append((layer, (6,) if rank == 1 else (2, 5, 4)))
    return cases


@pytest.mark.parametrize(("layer", "shape"), _minimal_layers(),
                         ids=[f"{c[0]['type']}-{len(c[1])}d" for c in _minimal_layers()])
def test_a_bare_dict_builds_what_its_parsed_spec_builds(layer: dict[str, Any],
                                                        shape: tuple[int, ...]) -> None:
    """The layers' own constructor defaults (torch's signatures) equal the declared ones."""
    from core.spec import ModelSpec

    layers = [layer, {"type": "flatten"}, {"type": "dense", "units": 2}]
    parsed = ModelSpec.from_dict({"layers": layers})
    raw, spec = (build_network(m, shape, seed=4, dtype="float64") for m in (
        {"layers": layers}, parsed))
    assert raw.flat_params.tobytes() == spec.flat_params.tobytes()
    x = np.random.default_rng(5).standard_normal((3, *shape))
    for training in (True, False):
        raw.rng, spec.rng = np.random.default_rng(6), np.random.default_rng(6)
        np.testing.assert_array_equal(raw.forward(x, training), spec.forward(x, training))
