"""Layer normalisation with torch.nn.LayerNorm semantics, over all of one sample's values.

normalized_shape is the whole sample: F for (N, F) inputs, (C, H, W) for (N, C, H, W)
inputs (torch.nn.LayerNorm([C, H, W])). Each row is normalised by its own mean and BIASED
variance, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, identically in training and
eval; gamma (ones) and beta (zeros) have the sample's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.layers.base import Array, Layer, Shape, spec_field


class LayerNorm(Layer):
    """Per-sample normalisation; params gamma and beta unless ``elementwise_affine`` is off."""

    type_name = "layer_norm"

    def __init__(self, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)

    @classmethod
    def from_spec(cls, spec: Any) -> LayerNorm:
        given = {key: spec_field(spec, key) for key in ("eps", "elementwise_affine")}
        return cls(**{key: value for key, value in given.items() if value is not None})

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if self.elementwise_affine:
            # torch's reset_parameters: ones and zeros, no random draws
            self.params["gamma"] = np.ones(input_shape, dtype=self.dtype)
            self.params["beta"] = np.zeros(input_shape, dtype=self.dtype)
        return input_shape

    def forward(self, x: Array, training: bool) -> Array:
        """(N, *sample) -> same shape; training and eval alike."""
        rows = self.contiguous("x", x).reshape(x.shape[0], -1)
        xhat = self.scratch("xhat", rows.shape)
        np.subtract(rows, rows.mean(axis=1, keepdims=True), out=xhat)
        var = np.mean(np.square(xhat), axis=1, keepdims=True)
        inv_std: Array = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        self._xhat, self._inv_std = xhat, inv_std
        if not self.elementwise_affine:
            return xhat.reshape(x.shape)
        out = self.scratch("out", rows.shape)
        np.multiply(xhat, self.params["gamma"].reshape(-1), out=out)
        out += self.params["beta"].reshape(-1)
        return out.reshape(x.shape)

    def backward(self, dy: Array) -> Array | None:
        """dL/dy -> dL/dx, same shape; gamma/beta gradients set in place."""
        rows = self.contiguous("dy", dy).reshape(dy.shape[0], -1)
        xhat = self._xhat
        if self.elementwise_affine:
            np.sum(rows * xhat, axis=0, out=self.grads["gamma"].reshape(-1))
            np.sum(rows, axis=0, out=self.grads["beta"].reshape(-1))
        if not self.needs_input_grad:
            return None
        dxhat = rows * self.params["gamma"].reshape(-1) if self.elementwise_affine else rows
        # dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma, means over the row
        dx = self.scratch("dx", rows.shape)
        np.multiply(dxhat, xhat, out=dx)
        np.multiply(xhat, dx.mean(axis=1, keepdims=True), out=dx)
        dx += dxhat.mean(axis=1, keepdims=True)
        np.subtract(dxhat, dx, out=dx)
        dx *= self._inv_std
        return dx.reshape(dy.shape)
