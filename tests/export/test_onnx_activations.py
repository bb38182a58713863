"""Every activation of core.activations, exported to ONNX, equals core's numbers.

Each runs three ways: as an activation layer straight on raw inputs that reach the tails
(|x| up to 60, past softplus's threshold of 20 and where exp-based forms saturate), fused
into a dense layer, and fused into a conv layer (softmax over channels there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.activations import ACTIVATIONS, Softplus
from export.onnx.activations import ACTIVATION_EXPORTERS
from export.onnx.model import onnx_model
from tests.export.helpers import ATOL, RTOL, assert_exports_predict, network, run_onnx

# Every registered activation by name, plus the parameters that differ from the defaults.
VARIANTS: list[Any] = [
    *sorted(ACTIVATIONS),
    {"type": "leaky_relu", "alpha": 0.2},
    {"type": "elu", "alpha": 0.5},
]


def label(activation: Any) -> str:
    if isinstance(activation, str):
        return activation
    return f"{activation['type']}-{activation['alpha']}"


@pytest.mark.parametrize("activation", VARIANTS, ids=label)
def test_activation_layer_on_raw_inputs(activation: Any) -> None:
    net = network([{"type": "activation", "activation": activation}], (9,), standardize=False)
    assert_exports_predict(net, scale=20.0)


@pytest.mark.parametrize("activation", VARIANTS, ids=label)
def test_activation_fused_in_dense(activation: Any) -> None:
    net = network([{"type": "dense", "units": 7, "activation": activation},
                   {"type": "dense", "units": 3}], (5,), loss="cross_entropy")
    assert_exports_predict(net, scale=3.0)


@pytest.mark.parametrize("activation", VARIANTS, ids=label)
def test_activation_fused_in_conv(activation: Any) -> None:
    net = network([{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": activation},
                   {"type": "flatten"}, {"type": "dense", "units": 2}], (2, 5, 5))
    assert_exports_predict(net)


def test_every_activation_has_an_exporter() -> None:
    assert set(ACTIVATION_EXPORTERS) == set(ACTIVATIONS)


def grid() -> np.ndarray:
    """A dense grid over [-60, 60] and around 0, as one batch of rows of 11 values."""
    x = np.concatenate([np.linspace(-60.0, 60.0, 12_001), np.linspace(-1e-3, 1e-3, 1_001),
                        [-1e4, 1e4, 0.0, -0.0]])
    return x[: x.size // 11 * 11].reshape(-1, 11).astype(np.float32)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_over_a_dense_grid(name: str) -> None:
    net = network([{"type": "activation", "activation": name}], (11,), standardize=False)
    X = grid()
    np.testing.assert_allclose(run_onnx(onnx_model(net), X), net.predict(X), rtol=RTOL,
                               atol=ATOL)


def test_softplus_is_the_identity_above_torchs_threshold() -> None:
    net = network([{"type": "activation", "activation": "softplus"}], (4,), standardize=False)
    X = np.array([[Softplus.threshold + 1e-3, 25.0, 1e4, 3e38]], dtype=np.float32)
    np.testing.assert_array_equal(run_onnx(onnx_model(net), X), X)


# Where core keeps relative precision and a plain ONNX operator would not: ELU near 0
# (exp(x) - 1 cancels), sigmoid and SiLU far in the negative tail (onnxruntime's Sigmoid is
# accurate to 1e-7 absolute only). The compositions hold 1e-6 relative there, no atol.
TAILS = {
    "elu": -np.logspace(-9.0, -1.0, 99),
    "sigmoid": -np.linspace(10.0, 80.0, 99),
    "silu": -np.linspace(10.0, 80.0, 99),
}


@pytest.mark.parametrize("name", sorted(TAILS))
def test_exact_compositions_keep_relative_precision(name: str) -> None:
    net = network([{"type": "activation", "activation": name}], (99,), standardize=False)
    X = TAILS[name][None].astype(np.float32)
    np.testing.assert_allclose(run_onnx(onnx_model(net), X), net.predict(X), rtol=1e-6, atol=0)
