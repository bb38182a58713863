"""Inverted dropout: zero each element with probability ``rate``, scale the rest 1/(1-rate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.layers.base import Array, Layer, Shape, spec_field


class Dropout(Layer):
    """torch.nn.Dropout semantics; the mask is drawn from the network's Generator.

    The Generator is the one passed to ``build`` (the network's ``rng``), so a checkpointed
    RNG state reproduces the same masks after a resume. Identity in eval mode.
    """

    type_name = "dropout"

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        self.rate = float(rate)
        self._scaled_mask: Array | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> Dropout:
        return cls(spec_field(spec, "rate", 0.5))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        self.rng = rng
        return input_shape

    def forward(self, x: Array, training: bool) -> Array:
        """Any shape -> same shape."""
        if not training or self.rate == 0.0:
            self._scaled_mask = None
            return x
        # Keep with probability 1 - rate, like torch's bernoulli_(1 - p).
        keep = self.rng.random(x.shape, dtype=self.dtype.type) >= self.rate
        mask = self.scratch("mask", x.shape)
        scale = 0.0 if self.rate >= 1.0 else 1.0 / (1.0 - self.rate)
        np.multiply(keep, self.dtype.type(scale), out=mask)
        self._scaled_mask = mask
        return np.multiply(x, mask, out=self.scratch("out", x.shape))

    def backward(self, dy: Array) -> Array | None:
        """Any shape -> same shape (may overwrite ``dy``)."""
        if self._scaled_mask is None:
            return dy
        return np.multiply(dy, self._scaled_mask, out=self.writable(dy))
