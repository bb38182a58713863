"""A standalone activation layer, and how a layer spec names its activation."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.activations import Activation, make_activation
from core.layers.base import Array, Layer, Shape, spec_field


def activation_of(spec: Any) -> Activation:
    """The activation a layer spec names in ``activation`` (``alpha`` may sit beside it)."""
    value = spec_field(spec, "activation")
    alpha = spec_field(spec, "alpha")
    if isinstance(value, str) and alpha is not None:
        value = {"type": value, "alpha": alpha}
    return make_activation(value)


class ActivationLayer(Layer):
    """Applies one activation element-wise; no parameters."""

    type_name = "activation"

    def __init__(self, activation: Activation | None = None) -> None:
        super().__init__()
        self.activation = activation if activation is not None else Activation()

    @classmethod
    def from_spec(cls, spec: Any) -> ActivationLayer:
        return cls(activation_of(spec))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return input_shape

    def forward(self, x: Array, training: bool) -> Array:
        """Any shape -> same shape."""
        return self.activation.forward(x, out=self.scratch_like("out", x))

    def backward(self, dy: Array) -> Array | None:
        """Any shape -> same shape (may overwrite ``dy``)."""
        return self.activation.backward(dy, out=self.writable(dy))
