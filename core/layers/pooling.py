"""Max and average 2-D pooling on NCHW inputs, torch semantics (no padding, floor mode).

Both run over the k*k window offsets with one strided slice each, so every pass is k*k
vectorised ufunc calls whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core._windows import output_size, window
from core.errors import SpecError
from core.layers.base import Array, Layer, Shape, spec_field


class _Pool2D(Layer):
    def __init__(self, pool_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.k = int(pool_size)
        self.stride = int(stride) if stride is not None else self.k
        self._x: Array = np.empty(0)

    @classmethod
    def from_spec(cls, spec: Any) -> _Pool2D:
        return cls(spec_field(spec, "pool_size", 2), spec_field(spec, "stride"))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 3:
            raise SpecError("pool_size", f"{self.type_name} needs (C, H, W) inputs, "
                            f"got {input_shape}")
        c, h, w = input_shape
        self.oh = output_size(h, self.k, self.stride)
        self.ow = output_size(w, self.k, self.stride)
        if self.oh < 1 or self.ow < 1:
            raise SpecError("pool_size", f"pool {self.k} is larger than the input {h}x{w}")
        return (c, self.oh, self.ow)

    def _offsets(self) -> list[tuple[int, int]]:
        # Row-major window order: the order in which torch scans for the first maximum.
        return [(i, j) for i in range(self.k) for j in range(self.k)]

    def _reduce_windows(self, x: Array, combine: Callable[..., Array]) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow): ``combine`` folded over every window offset."""
        self._x = x
        out = self.scratch("out", (x.shape[0], x.shape[1], self.oh, self.ow))
        offsets = self._offsets()
        np.copyto(out, window(x, *offsets[0], self.stride, self.oh, self.ow))
        for i, j in offsets[1:]:
            combine(out, window(x, i, j, self.stride, self.oh, self.ow), out=out)
        return out

    def _zeroed_dx(self) -> Array:
        dx = self.scratch("dx", self._x.shape)
        dx.fill(0.0)
        return dx


class MaxPool2D(_Pool2D):
    """torch.nn.MaxPool2d(pool_size, stride); backward sends dy to the FIRST maximum only."""

    type_name = "max_pool2d"

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow)."""
        self._out = self._reduce_windows(x, np.maximum)
        return self._out

    def backward(self, dy: Array) -> Array | None:
        """(N, C, oh, ow) -> (N, C, H, W)."""
        h, w = self._x.shape[2], self._x.shape[3]
        # Disjoint windows that tile the input write every dx element exactly once.
        tiled = self.stride == self.k and h == self.oh * self.k and w == self.ow * self.k
        dx = self.scratch("dx", self._x.shape) if tiled else self._zeroed_dx()
        disjoint = self.stride >= self.k
        hit = np.empty(dy.shape, dtype=bool)
        unclaimed = np.empty(dy.shape, dtype=bool)
        part = None if disjoint else np.empty(dy.shape, dtype=dx.dtype)
        offsets = self._offsets()
        for t, (i, j) in enumerate(offsets):
            # Scan in torch's order; a window's gradient goes to its first maximum only.
            if t == 0:
                np.equal(window(self._x, i, j, self.stride, self.oh, self.ow), self._out,
                         out=hit)
                np.logical_not(hit, out=unclaimed)
            elif t == len(offsets) - 1:
                hit, unclaimed = unclaimed, hit  # whatever is unclaimed peaks here
            else:
                np.equal(window(self._x, i, j, self.stride, self.oh, self.ow), self._out,
                         out=hit)
                hit &= unclaimed
                unclaimed ^= hit
            target = window(dx, i, j, self.stride, self.oh, self.ow)
            if part is None:
                np.multiply(dy, hit, out=target)
            else:
                np.multiply(dy, hit, out=part)
                target += part
        return dx


class AvgPool2D(_Pool2D):
    """torch.nn.AvgPool2d(pool_size, stride): every window divides by k*k."""

    type_name = "avg_pool2d"

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow)."""
        out = self._reduce_windows(x, np.add)
        out *= 1.0 / (self.k * self.k)
        return out

    def backward(self, dy: Array) -> Array | None:
        """(N, C, oh, ow) -> (N, C, H, W)."""
        dx = self._zeroed_dx()
        share = dy * (1.0 / (self.k * self.k))
        for i, j in self._offsets():
            window(dx, i, j, self.stride, self.oh, self.ow)[...] += share
        return dx
