"""Flatten (N, C, H, W) to (N, C*H*W) in C, H, W order, as torch.nn.Flatten does."""

from __future__ import annotations

import math

import numpy as np

from core.layers.base import Array, Layer, Shape


class Flatten(Layer):
    """Reshape to (N, prod(input_shape)): a view when the input is C-contiguous, else (a
    channel-major conv or pool output) one copy into C order, in a scratch array."""

    type_name = "flatten"

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: Array, training: bool) -> Array:
        """(N, *input_shape) -> (N, prod(input_shape))."""
        return self.contiguous("out", x).reshape(x.shape[0], -1)

    def backward(self, dy: Array) -> Array | None:
        """(N, prod(input_shape)) -> (N, *input_shape)."""
        return dy.reshape((dy.shape[0], *self.input_shape))
