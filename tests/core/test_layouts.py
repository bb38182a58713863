"""Channel-major activations between conv and pooling layers (core.layers.base, "Memory
order"): the same bits as the same layers fed C-contiguous copies, and right gradients.

Conv2D returns the NCHW view of a (C, N, H, W) array and the pools work in their input's
order, so every conv -> pool -> conv step here runs on channel-major arrays. The twin
network below receives ``np.ascontiguousarray`` of every input and every gradient: the
layout the layers had before. Each output, input gradient and parameter gradient must
match it bit for bit: the 2x2 max pool's index scatter, the general (overlapping, untiled)
max pool, the average pool, and the layers that reduce (batch norm, layer norm, flatten's
dense) after a channel-major input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.activations import ACTIVATIONS
from core.layers import (
    ActivationLayer,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    MaxPool2D,
)
from core.layers.base import Layer, channel_major
from tests.core.gradcheck import check_layer


def _conv(filters: int, activation: str = "relu", padding: Any = 1) -> Conv2D:
    return Conv2D(filters, 3, 1, padding, ACTIVATIONS[activation]())


# name -> a factory of the layers (called twice: the network and its contiguous twin).
STACKS: dict[str, Any] = {
    # bench_core's LeNet case in small: the 2x2 max pool's fast path, twice.
    "lenet": lambda: [_conv(4), MaxPool2D(2), _conv(6), MaxPool2D(2), Flatten(), Dense(3)],
    # The general max pool: overlapping windows (3, stride 2), then untiled ones (2,
    # stride 1); a strided conv in between.
    "general_max": lambda: [_conv(4), MaxPool2D(3, 2), Conv2D(5, 2, 2, "valid"),
                            MaxPool2D(2, 1), Flatten(), Dense(3)],
    # Average pools receiving the conv's channel-major output (tiled, then overlapping).
    "avg": lambda: [_conv(4, "tanh"), AvgPool2D(2), _conv(5, "gelu"), AvgPool2D(3, 1),
                    Flatten(), Dense(2)],
    # The layers that reduce over a channel-major input, and the element-wise ones.
    "norms": lambda: [_conv(4), MaxPool2D(2), BatchNorm(), ActivationLayer(ACTIVATIONS["relu"]()),
                      Dropout(0.25), _conv(3, "linear"), LayerNorm(), MaxPool2D(2),
                      BatchNorm(), Flatten(), Dense(2)],
}


def _build(name: str, dtype: type, shape: tuple[int, int, int]) -> list[Layer]:
    layers: list[Layer] = STACKS[name]()
    rng = np.random.default_rng(11)
    for layer in layers:
        shape = layer.build(shape, rng, dtype)  # type: ignore[assignment]
    return layers


def _run(layers: list[Layer], x: np.ndarray, dy: np.ndarray, contiguous: bool
         ) -> tuple[list[bytes], list[bool]]:
    """Forward and backward; the bits of every output, gradient and parameter gradient,
    and per layer whether its output and its input gradient were both channel-major."""
    fix = np.ascontiguousarray if contiguous else (lambda a: a)
    bits: list[bytes] = []
    major = []
    for layer in layers:
        x = layer.forward(fix(x), training=True)
        major.append(channel_major(x))
        bits.append(np.ascontiguousarray(x).tobytes())
    grad: np.ndarray | None = dy.copy()
    for i in reversed(range(len(layers))):
        assert grad is not None
        grad = layers[i].backward(fix(grad))
        assert grad is not None
        major[i] = major[i] and channel_major(grad)
        bits.append(np.ascontiguousarray(grad).tobytes())
        bits.extend(g.tobytes() for g in layers[i].grads.values())
    return bits, major


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(STACKS))
def test_channel_major_path_is_the_contiguous_paths_bits(name: str, dtype: type) -> None:
    shape = (2, 12, 12)
    rng = np.random.default_rng(3)
    # Rounded inputs: ties inside pool windows and exact zeros after the ReLUs.
    x = np.round(rng.standard_normal((5, *shape)) * 2.0).astype(dtype)
    layers, twin = _build(name, dtype, shape), _build(name, dtype, shape)
    dy = rng.standard_normal((5, *layers[-1].output_shape)).astype(dtype)
    for _ in range(2):  # the second batch reuses every scratch array
        got, major = _run(layers, x, dy, contiguous=False)
        want, _ = _run(twin, x, dy, contiguous=True)
        assert got == want
    # The path under test was taken: a conv after the first, and a pool right after a
    # conv, return channel-major outputs and input gradients.
    for i, layer in enumerate(layers[1:], 1):
        if isinstance(layer, Conv2D) or (isinstance(layer, (MaxPool2D, AvgPool2D))
                                         and isinstance(layers[i - 1], Conv2D)):
            assert major[i], (name, i, layer.type_name)


class _Stack(Layer):
    """Layers run as one, for the float64 gradient check of the whole chain."""

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        self.layers = layers
        self.params = {f"{i}.{k}": v for i, layer in enumerate(layers)
                       for k, v in layer.params.items()}
        self.grads = {f"{i}.{k}": v for i, layer in enumerate(layers)
                      for k, v in layer.grads.items()}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        grad: np.ndarray | None = dy
        for layer in reversed(self.layers):
            assert grad is not None
            grad = layer.backward(grad)
        return grad


@pytest.mark.parametrize("name", ["lenet", "general_max", "avg"])
def test_channel_major_chain_gradients_match_central_differences(name: str) -> None:
    shape = (2, 10, 10)
    stack = _Stack(_build(name, np.float64, shape))
    x = np.random.default_rng(8).standard_normal((2, *shape))
    errors = check_layer(stack, x)
    assert max(errors.values()) <= 1e-7, errors
