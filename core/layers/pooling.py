"""Max and average 2-D pooling on NCHW inputs, torch semantics (no padding, floor mode).

Both run over the k*k window offsets with one strided slice each, so every pass is k*k
vectorised ufunc calls whatever the image size.

They work in their input's memory order (see core.layers.base): a channel-major input (a
conv's output) is pooled as the C-contiguous (C, N, H, W) array it is, its output and input
gradient are channel-major too, so the conv after (or before) a pool copies no transposed
data. Each value is the same element-wise result in either order: the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from core._windows import output_size, window
from core.errors import SpecError
from core.layers.base import Array, Layer, Shape, channel_major, spec_field


class _Pool2D(Layer):
    def __init__(self, pool_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.k = int(pool_size)
        self.stride = int(stride) if stride is not None else self.k
        self._x: Array = np.empty(0)  # the input in the layer's frame (see _frame)
        self._channel_major = False

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

    def _enter(self, x: Array) -> Array:
        """Forward's input in the frame the layer works in, remembered for backward."""
        self._channel_major = channel_major(x)
        self._x = self._frame(x)
        return self._x

    def _frame(self, a: Array) -> Array:
        """(N, C, ...) as (C, N, ...) when the input is channel-major, else ``a`` itself; its
        own inverse. Every array of the layer lives in the frame (C order there): windows
        are the last two axes in both, and in the frame the input reads in memory order."""
        return a.transpose(1, 0, 2, 3) if self._channel_major else a

    def _reduce_windows(self, x: Array, combine: Callable[..., Array]) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow): ``combine`` folded over every window offset."""
        x = self._enter(x)
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
    """torch.nn.MaxPool2d(pool_size, stride); backward sends dy to the FIRST maximum only.

    2x2 windows with stride 2 (the common case) take a faster path: forward copies the
    four window offsets into contiguous planes once, so the maxima and the search for each
    window's first maximum run as long contiguous passes, and backward scatters dy to the
    winners by index into a zeroed dx (bench_core's CNN, batch 64, forward + backward:
    16 x 28 x 28 inputs 2.47 -> 1.92 ms, 32 x 14 x 14 1.24 -> 1.05 ms). The values and
    the routing are those of the general path; only a non-maximum's zero is +0 where the
    general path writes dy * 0 (-0 for dy < 0).
    """

    type_name = "max_pool2d"

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow)."""
        if self.k == self.stride == 2:
            return self._frame(self._forward_2x2(self._enter(x)))
        self._out = self._reduce_windows(x, np.maximum)
        return self._frame(self._out)

    def backward(self, dy: Array) -> Array | None:
        """(N, C, oh, ow) -> (N, C, H, W)."""
        dy = self._frame(dy)
        if self.k == self.stride == 2:
            return self._frame(self._backward_2x2(dy))
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
        return self._frame(dx)

    def _forward_2x2(self, x: Array) -> Array:
        """Maxima of 2x2 windows with stride 2, and where each window's first maximum is
        (``x`` and the result in the layer's frame)."""
        out_shape = (x.shape[0], x.shape[1], self.oh, self.ow)
        # Strided windows cost one short inner loop per output row in every pass; copied
        # once into planes, the rest are long contiguous passes.
        # The planes live in dx's buffer (4 windows of outputs fit in the input's size),
        # free until backward.
        planes = self.scratch("dx", x.shape).reshape(-1)[:4 * math.prod(out_shape)]
        planes = planes.reshape(4, *out_shape)
        for t, (i, j) in enumerate(self._offsets()):
            np.copyto(planes[t], window(x, i, j, 2, self.oh, self.ow))
        out = self.scratch("out", out_shape)
        np.maximum(planes[0], planes[1], out=out)  # the general path's order of maxima
        np.maximum(out, planes[2], out=out)
        np.maximum(out, planes[3], out=out)
        hits = self._buffers(out_shape)
        top_left, top_right, bottom_left, bottom, right = hits
        for t in range(3):
            np.equal(planes[t], out, out=hits[t])
        # torch scans (0,0), (0,1), (1,0), (1,1) and keeps the first maximum: the bottom
        # row only if neither top element is one, then the right element only if the
        # left one of that row is not. A NaN window (no element equals its maximum) sends
        # dy to (1,1), as the general path does.
        np.logical_or(top_left, top_right, out=bottom)
        np.logical_not(bottom, out=bottom)
        np.logical_and(bottom, bottom_left, out=right)
        right |= top_left
        np.logical_not(right, out=right)
        return out

    def _backward_2x2(self, dy: Array) -> Array:
        """dy to each window's first maximum (``dy`` and the result in the layer's frame)."""
        n, c, h, w = self._x.shape  # in the frame: C and N when the input is channel-major
        _, _, _, bottom, right = self._buffers(dy.shape)
        # Flat index of each window's first maximum: its top-left element, plus one column
        # to the right, plus one row down (buffers reused: fresh arrays this size cost page
        # faults on every batch). The top-left elements' indices depend on the shape alone:
        # made once. The small offsets are summed in 16 bits, the index once in 64: less
        # memory to stream (16 x 28 x 28 pool of a 64 batch: 0.31 -> 0.22 ms, cold cache).
        def top_left(index: Array) -> None:
            rows = np.arange(self.oh).reshape(-1, 1) * (2 * w) + np.arange(self.ow) * 2
            np.add(np.arange(n * c).reshape(n, c, 1, 1) * (h * w), rows, out=index)

        corners = self.scratch("corners", dy.shape, dtype=np.intp, init=top_left)
        small = np.int16 if w < np.iinfo(np.int16).max else np.intp
        offset = self.scratch("offset", dy.shape, dtype=small)
        np.multiply(bottom, small(w), out=offset)
        offset += right
        winner = self.scratch("winner", dy.shape, dtype=np.intp)
        np.add(corners, offset, out=winner)
        dx = self.scratch("dx", self._x.shape)
        dx.fill(0.0)
        # dx is C-contiguous in the frame, so these flat indices are its memory order; dy is
        # read in the same (frame) order, a copy when it came in the other one (a Flatten's).
        dx.reshape(-1)[winner.reshape(-1)] = dy.reshape(-1)
        return dx

    def _buffers(self, shape: tuple[int, ...]) -> Array:
        """Five (N, C, oh, ow) boolean arrays: three window hits, ``bottom``, ``right``."""
        return self.scratch("hits", (5, *shape), dtype=bool)


class AvgPool2D(_Pool2D):
    """torch.nn.AvgPool2d(pool_size, stride): every window divides by k*k."""

    type_name = "avg_pool2d"

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, C, oh, ow)."""
        out = self._reduce_windows(x, np.add)
        out *= 1.0 / (self.k * self.k)
        return self._frame(out)

    def backward(self, dy: Array) -> Array | None:
        """(N, C, oh, ow) -> (N, C, H, W)."""
        dx = self._zeroed_dx()
        share = self._frame(dy) * (1.0 / (self.k * self.k))
        for i, j in self._offsets():
            window(dx, i, j, self.stride, self.oh, self.ow)[...] += share
        return self._frame(dx)
