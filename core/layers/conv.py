"""2-D convolution (cross-correlation, as torch.nn.Conv2d) on NCHW inputs: im2col + GEMM.

Inputs may come in either memory order of core.layers.base; the output and the input
gradient are channel-major (NCHW views of (C, N, H, W) arrays), the GEMM's own layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core._windows import (
    col2im_add,
    col2im_wide,
    conv_padding,
    im2col,
    im2col_wide,
    output_size,
)
from core.activations import Activation
from core.errors import SpecError
from core.initializers import fan_in_fan_out, initialize
from core.layers.activation import activation_of
from core.layers.base import Array, Layer, Shape, spec_field
from core.layers.dense import default_bias_init

# The columns are made and used (forward), and their gradient made and folded back
# (backward), this many bytes at a time (about one core's L2 cache on the development
# machine: 8 images of the 16->32 conv on 14x14).
_CHUNK_BYTES = 1 << 20
# Rows of the long GEMM operands (columns, outputs, their gradients) are this many elements
# longer than they need be: a row length of a multiple of 4 KiB (the 16->32 conv's 14,336
# floats on 14x14 images of a 64 batch) maps every row onto the same cache sets while
# OpenBLAS packs them. The padding is never read; the sums are the same.
_ROW_PAD = 16


def _images_per_chunk(bytes_per_image: int) -> int:
    """Images whose columns (or their gradient) fit in _CHUNK_BYTES; at least one."""
    return max(1, _CHUNK_BYTES // bytes_per_image)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


class Conv2D(Layer):
    """Kernel (out, in, kh, kw) and bias (out,), stride s, padding valid/same/int.

    Forward gathers the kh*kw shifted windows into channel-major columns (C*kh*kw + 1,
    N*oh*row) -- the extra row of ones carries the bias -- and runs ONE GEMM for the batch;
    the activation pass drops the garbage columns and returns the result channel-major
    (no transposition back to NCHW memory). Backward: dW (and db) by one GEMM, dX's columns
    by another (stride 1: a few images at a time), then col2im slice-adds them back into
    channel-major planes, returned as they are. Every variation of these (chunks, operand
    order, row padding, memory order) computes each value as the same sum in the same
    order: same bits. Stride 1 uses "wide" rows (row = padded width) so every im2col/col2im
    slice is one contiguous run per plane.
    """

    type_name = "conv2d"
    penalized = ("weight",)

    def __init__(self, filters: int, kernel_size: Any = 3, stride: int = 1,
                 padding: str | int = "valid", activation: Activation | None = None,
                 weight_init: Any = None, bias_init: Any = None) -> None:
        super().__init__()
        self.filters = int(filters)
        self.kh, self.kw = _pair(kernel_size)
        self.stride = int(stride)
        self.padding = padding
        self.activation = activation if activation is not None else Activation()
        self.weight_init = weight_init
        self.bias_init = bias_init

    @classmethod
    def from_spec(cls, spec: Any) -> Conv2D:
        return cls(spec_field(spec, "filters"), spec_field(spec, "kernel_size", 3),
                   spec_field(spec, "stride", 1), spec_field(spec, "padding", "valid"),
                   activation_of(spec), spec_field(spec, "weight_init"),
                   spec_field(spec, "bias_init"))

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        if len(input_shape) != 3:
            raise SpecError("filters", f"conv2d needs (C, H, W) inputs, got {input_shape}")
        try:
            self.pads = conv_padding(self.padding, self.kh, self.kw, self.stride)
        except ValueError as exc:
            raise SpecError("padding", str(exc)) from exc
        c, h, w = input_shape
        top, bottom, left, right = self.pads
        self.oh = output_size(h, self.kh, self.stride, top, bottom)
        self.ow = output_size(w, self.kw, self.stride, left, right)
        if self.oh < 1 or self.ow < 1:
            raise SpecError("kernel_size", f"kernel {self.kh}x{self.kw} is larger than the "
                            f"padded input {h + top + bottom}x{w + left + right}")
        shape = (self.filters, c, self.kh, self.kw)
        fan_in, fan_out = fan_in_fan_out(shape)
        self.params["weight"] = initialize(self.weight_init, "torch_default", shape, fan_in,
                                           fan_out, rng, self.dtype)
        self.params["bias"] = initialize(self.bias_init, default_bias_init(self.weight_init),
                                         (self.filters,), fan_in, fan_out, rng, self.dtype)
        return (self.filters, self.oh, self.ow)

    def _geometry(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(C, N, padded height, padded width) for a batch of ``x_shape``."""
        top, bottom, left, right = self.pads
        n, c, h, w = x_shape
        return c, n, h + top + bottom, w + left + right

    def _padded_planes(self, x: Array) -> Array:
        """x (N, C, H, W) zero-padded into channel-major planes (C, N, Hp, Wp), flattened.

        One copy of the (small) input makes every im2col slice read along rows; from a
        channel-major input (a pool's or conv's output) it moves no data across images.
        The flat buffer has kw - 1 elements of slack for the wide stride-1 windows.
        """
        c, n, hp, wp = self._geometry(x.shape)
        flat = self.scratch("xp", (c * n * hp * wp + self.kw - 1,), zero=True)
        top, _, left, _ = self.pads
        h, w = x.shape[2], x.shape[3]
        planes = flat[:c * n * hp * wp].reshape(c, n, hp, wp)
        planes[:, :, top:top + h, left:left + w] = x.transpose(1, 0, 2, 3)
        return flat

    def rows(self, key: str, count: int, length: int, zero: bool = False) -> Array:
        """A (count, length) scratch matrix whose rows are _ROW_PAD elements apart."""
        return self.scratch(key, (count, length + _ROW_PAD), zero)[:, :length]

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, filters, oh, ow)."""
        self._x_shape = x.shape
        c, n, hp, wp = self._geometry(x.shape)
        flat = self._padded_planes(x)
        k = c * self.kh * self.kw
        # Stride 1: "wide" rows of Wp columns (the last Wp - ow are discarded) so each
        # im2col slice is one contiguous run; other strides gather the windows directly.
        self._row = wp if self.stride == 1 else self.ow
        length = n * self.oh * self._row
        # Channel-major columns (C*kh*kw + 1, N*oh*row) for ONE GEMM over the batch; the
        # last row is ones so the GEMM adds the bias (and yields its gradient in backward).
        cols = self.rows("cols", k + 1, length)
        cols[k] = 1.0
        self._cols = cols
        kernel = self.scratch("kernel", (self.filters, k + 1))
        kernel[:, :k] = self.params["weight"].reshape(self.filters, k)
        kernel[:, k] = self.params["bias"]
        out_t = self.rows("out_t", self.filters, length)
        if self.stride == 1:
            # A few images at a time, as backward does: the GEMM reads their columns
            # (about 1 MiB) from the cache right after im2col wrote them. Each output is
            # the same dot product whatever the chunk: the same bits (16->32 conv on 14x14,
            # a 64 batch: forward about 0.1 ms faster, within this machine's noise).
            run = self.oh * self._row
            step = _images_per_chunk((k + 1) * run * cols.itemsize)
            for start in range(0, n, step):
                m = min(step, n - start)
                part = slice(start * run, (start + m) * run)
                im2col_wide(flat, cols[:k, part].reshape(c, self.kh, self.kw, m, run), wp,
                            hp * wp, n, start)
                np.matmul(kernel, cols[:, part], out=out_t[:, part])
        else:
            patches = cols[:k].reshape(c, self.kh, self.kw, n, -1)
            planes = flat[:c * n * hp * wp].reshape(c, n, hp, wp)
            im2col(planes, patches.reshape(c, self.kh, self.kw, n, self.oh, self.ow),
                   self.stride)
            np.matmul(kernel, cols, out=out_t)
        valid = out_t.reshape(self.filters, n, self.oh, self._row)[..., :self.ow]
        # The activation's single pass drops the wide rows' garbage columns; the result stays
        # channel-major (an NCHW view of (filters, N, oh, ow) memory, see core.layers.base):
        # the next pool or conv reads it in that order, with no transposing copy.
        out = self.scratch("out", (self.filters, n, self.oh, self.ow)).transpose(1, 0, 2, 3)
        return self.activation.forward(valid.transpose(1, 0, 2, 3), out=out)

    def backward(self, dy: Array) -> Array | None:
        """(N, filters, oh, ow) -> (N, C, H, W), or None when the input gradient is not needed."""
        c, n, hp, wp = self._geometry(self._x_shape)
        k = c * self.kh * self.kw
        # Garbage columns of the wide layout keep a zero gradient: they add nothing below.
        dz_t2 = self.rows("dz_t", self.filters, n * self.oh * self._row, zero=True)
        dz_t = dz_t2.reshape(self.filters, n, self.oh, self._row)
        # The activation's gradient in dy's own layout (channel-major when a pool or conv
        # sent it), then one copy into the wide rows: a ufunc writing through the strided
        # rows with a boolean mask (ReLU's) casts in small buffered pieces, about twice as slow.
        dz = self.activation.backward(dy, out=self.writable(dy))
        np.copyto(dz_t[..., :self.ow].transpose(1, 0, 2, 3), dz)
        # The gradient GEMM runs transposed, cols (k+1, L) @ dz.T (L, filters): the same
        # sums in the same order (bit for bit), but OpenBLAS packs the long operand faster
        # this way round (2.9 -> 2.2 ms for the 16->32 conv of a 64-image batch).
        grad_t = self.scratch("grad_t", (k + 1, self.filters))
        np.matmul(self._cols, dz_t2.T, out=grad_t)
        self.grads["weight"].reshape(self.filters, k)[...] = grad_t[:k].T
        self.grads["bias"][...] = grad_t[k]
        if not self.needs_input_grad:
            return None
        weight_t = self.params["weight"].reshape(self.filters, k).T
        dflat = self.scratch("dxp", (c * n * hp * wp + self.kw - 1,))
        dflat.fill(0.0)
        dplanes = dflat[:c * n * hp * wp].reshape(c, n, hp, wp)
        if self.stride == 1:
            # A few images at a time: their columns' gradient (about 1 MiB) is still in
            # the cache when col2im adds it back, instead of a round trip through memory.
            # Each column is the same dot product whatever the chunk: the same bits.
            length = self.oh * self._row
            step = _images_per_chunk(k * length * dflat.itemsize)
            dcols = self.scratch("dcols", (k, min(step, n) * length))
            for start in range(0, n, step):
                m = min(step, n - start)
                chunk = dcols[:, :m * length]
                np.matmul(weight_t, dz_t2[:, start * length:(start + m) * length], out=chunk)
                col2im_wide(chunk.reshape(c, self.kh, self.kw, m, length), dflat, wp,
                            hp * wp, n, start)
        else:
            dcols = self.scratch("dcols", (k, dz_t2.shape[1]))
            np.matmul(weight_t, dz_t2, out=dcols)
            col2im_add(dcols.reshape(c, self.kh, self.kw, n, self.oh, self.ow), dplanes,
                       self.stride)
        top, _, left, _ = self.pads
        h, w = self._x_shape[2], self._x_shape[3]
        # Channel-major, as the planes are: the previous pool or conv reads it in that order.
        dx = self.scratch("dx", (c, n, h, w))
        np.copyto(dx, dplanes[:, :, top:top + h, left:left + w])
        return dx.transpose(1, 0, 2, 3)
