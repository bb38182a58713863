"""Batch normalisation over (N, F) or (N, C, H, W) inputs with torch.nn.BatchNorm semantics.

Training normalises with the biased batch variance and updates the running statistics with
momentum 0.1 and the UNBIASED variance; eval normalises with the running statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.activations import Activation
from core.errors import SpecError
from core.initializers import FAN_SCALES, init_name, initialize
from core.layers.activation import activation_of
from core.layers.base import Array, Layer, Shape, spec_field


class BatchNorm(Layer):
    """gamma/beta per feature (channel); buffers running_mean (0) and running_var (1)."""

    type_name = "batch_norm"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5,
                 activation: Activation | None = None, weight_init: Any = None,
                 bias_init: Any = None) -> None:
        super().__init__()
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.activation = activation if activation is not None else Activation()
        self.weight_init = weight_init
        self.bias_init = bias_init

    @classmethod
    def from_spec(cls, spec: Any) -> BatchNorm:
        return cls(spec_field(spec, "momentum", 0.1), spec_field(spec, "eps", 1e-5),
                   activation_of(spec), spec_field(spec, "weight_init"),
                   spec_field(spec, "bias_init"))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) not in (1, 3):
            raise SpecError("type", f"batch_norm needs (F,) or (C, H, W) inputs, "
                            f"got {input_shape}")
        channels = input_shape[0]
        self.axes: tuple[int, ...] = (0,) if len(input_shape) == 1 else (0, 2, 3)
        self.bshape = (1, channels) + (1,) * (len(input_shape) - 1)
        self.params["gamma"] = self._init(self.weight_init, "ones", "weight_init", channels, rng)
        self.params["beta"] = self._init(self.bias_init, "zeros", "bias_init", channels, rng)
        self.buffers["running_mean"] = np.zeros(channels, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=self.dtype)
        return input_shape

    def _init(self, spec: Any, default: str, field: str, channels: int,
              rng: np.random.Generator) -> Array:
        # torch's own default for BatchNorm is gamma = 1, beta = 0.
        name = init_name(spec)
        if name in (None, "torch_default"):
            spec = name = default
        if name in FAN_SCALES:
            raise SpecError(field, f"{name!r} needs a weight matrix; batch_norm's parameters "
                            "are vectors (use ones, zeros, constant, normal or uniform)")
        return initialize(spec, default, (channels,), channels, channels, rng, self.dtype)

    def forward(self, x: Array, training: bool) -> Array:
        """(N, F) or (N, C, H, W) -> same shape."""
        x = self.contiguous("x", x)  # the batch means sum in C order, whatever x's layout
        gamma = self.params["gamma"].reshape(self.bshape)
        beta = self.params["beta"].reshape(self.bshape)
        self._training = training
        if training:
            count = math.prod(x.shape[a] for a in self.axes)
            mean = x.mean(axis=self.axes)
            centered = x - mean.reshape(self.bshape)
            var = np.mean(centered * centered, axis=self.axes)
            self._count = count
            # torch refuses a single value per channel (no unbiased variance); a ragged last
            # batch of one row must not fail a job, so it normalises (to beta, zero input
            # gradient) and leaves the running statistics alone.
            if count > 1:
                self._update_running(mean, var, count)
        else:
            centered = x - self.buffers["running_mean"].reshape(self.bshape)
            var = self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)
        self._inv_std = inv_std.reshape(self.bshape)
        centered *= self._inv_std
        self._xhat = centered
        out = self.scratch("out", x.shape)
        np.multiply(centered, gamma, out=out)
        out += beta
        return self.activation.forward(out, out=out)

    def _update_running(self, mean: Array, var: Array, count: int) -> None:
        m = self.momentum
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        running_mean *= 1.0 - m
        running_mean += m * mean
        running_var *= 1.0 - m
        running_var += (m * count / (count - 1)) * var

    def backward(self, dy: Array) -> Array | None:
        """dL/dy -> dL/dx, same shape; gamma/beta gradients set in place."""
        dy = self.contiguous("dy", dy)  # the gradient sums too
        dz = self.activation.backward(dy, out=self.writable(dy))
        xhat = self._xhat
        np.sum(dz, axis=self.axes, out=self.grads["beta"])
        np.sum(dz * xhat, axis=self.axes, out=self.grads["gamma"])
        if not self.needs_input_grad:
            return None
        scale = self.params["gamma"].reshape(self.bshape) * self._inv_std
        if not self._training:
            dx_eval: Array = dz * scale
            return dx_eval
        # dx = gamma/sigma * (dz - mean(dz) - xhat * mean(dz * xhat)), means over the batch.
        n = self._count
        dbeta = self.grads["beta"].reshape(self.bshape)
        dgamma = self.grads["gamma"].reshape(self.bshape)
        dx = self.scratch("dx", dz.shape)
        np.multiply(xhat, dgamma * (1.0 / n), out=dx)
        dx += dbeta * (1.0 / n)
        np.subtract(dz, dx, out=dx)
        dx *= scale
        return dx
