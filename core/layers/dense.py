"""Fully connected layer, ``y = act(x @ W + b)`` with W stored (fan_in, fan_out)."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.activations import Activation
from core.errors import SpecError
from core.initializers import fan_in_fan_out, init_name, initialize
from core.layers.activation import activation_of
from core.layers.base import Array, Layer, Shape, spec_field


def default_bias_init(weight_init: Any) -> str:
    """torch's bias rule goes with torch's weight rule; every other weight rule gets zeros."""
    return "torch_default" if init_name(weight_init) in (None, "torch_default") else "zeros"


class Dense(Layer):
    """Dense layer on (N, F) inputs, with its activation fused after the affine part."""

    type_name = "dense"
    penalized = ("weight",)

    def __init__(self, units: int, activation: Activation | None = None,
                 weight_init: Any = None, bias_init: Any = None) -> None:
        super().__init__()
        self.units = int(units)
        self.activation = activation if activation is not None else Activation()
        self.weight_init = weight_init
        self.bias_init = bias_init

    @classmethod
    def from_spec(cls, spec: Any) -> Dense:
        return cls(spec_field(spec, "units"), activation_of(spec),
                   spec_field(spec, "weight_init"), spec_field(spec, "bias_init"))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 1:
            raise SpecError("units", f"dense needs flat (features,) inputs, got shape "
                            f"{input_shape}; add a flatten layer first")
        fan_in, fan_out = fan_in_fan_out((self.units, input_shape[0]))
        self.params["weight"] = initialize(self.weight_init, "torch_default",
                                           (input_shape[0], self.units), fan_in, fan_out,
                                           rng, self.dtype)
        self.params["bias"] = initialize(self.bias_init, default_bias_init(self.weight_init),
                                         (self.units,), fan_in, fan_out, rng, self.dtype)
        return (self.units,)

    def forward(self, x: Array, training: bool) -> Array:
        """(N, fan_in) -> (N, units)."""
        self._x = x
        out = self.scratch("out", (x.shape[0], self.units))
        np.matmul(x, self.params["weight"], out=out)
        out += self.params["bias"]
        return self.activation.forward(out, out=out)

    def backward(self, dy: Array) -> Array | None:
        """(N, units) -> (N, fan_in), or None when the input gradient is not needed."""
        dz = self.activation.backward(dy, out=self.writable(dy))
        np.matmul(self._x.T, dz, out=self.grads["weight"])
        np.sum(dz, axis=0, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        dx = self.scratch("dx", self._x.shape)
        np.matmul(dz, self.params["weight"].T, out=dx)
        return dx
