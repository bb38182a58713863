"""2-D convolution (cross-correlation, as torch.nn.Conv2d) on NCHW inputs: im2col + GEMM."""

from __future__ import annotations

from typing import Any

import numpy as np

from core._windows import col2im_add, conv_padding, im2col, output_size
from core.activations import Activation
from core.initializers import fan_in_fan_out, initialize
from core.layers.activation import activation_of
from core.layers.base import Array, Layer, Shape, spec_field
from core.layers.dense import default_bias_init


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


class Conv2D(Layer):
    """Kernel (out, in, kh, kw) and bias (out,), stride s, padding valid/same/int.

    Forward gathers the kh*kw shifted windows into columns (N, C*kh*kw, oh*ow) and does one
    batched GEMM with the kernel matrix (out, C*kh*kw), which lands directly in NCHW order.
    Backward: dW and dX by GEMM, then dX's columns are slice-added back (col2im).
    """

    type_name = "conv2d"

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
        from core.errors import SpecError

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

    def _padded(self, x: Array) -> Array:
        top, bottom, left, right = self.pads
        if not any(self.pads):
            return x
        n, c, h, w = x.shape
        shape = (n, c, h + top + bottom, w + left + right)
        fresh = ("xp", shape) not in self._scratch
        xp = self.scratch("xp", shape)
        if fresh:
            xp.fill(0.0)  # the border stays zero: later batches only rewrite the interior
        xp[:, :, top:top + h, left:left + w] = x
        return xp

    def forward(self, x: Array, training: bool) -> Array:
        """(N, C, H, W) -> (N, filters, oh, ow)."""
        n, c = x.shape[0], x.shape[1]
        self._x_shape = x.shape
        xp = self._padded(x)
        cols = self.scratch("cols", (n, c, self.kh, self.kw, self.oh, self.ow))
        im2col(xp, cols, self.stride)
        self._cols = cols.reshape(n, c * self.kh * self.kw, self.oh * self.ow)
        out = self.scratch("out", (n, self.filters, self.oh, self.ow))
        kernel = self.params["weight"].reshape(self.filters, -1)
        np.matmul(kernel, self._cols, out=out.reshape(n, self.filters, -1))
        out += self.params["bias"][:, None, None]
        return self.activation.forward(out, out=out)

    def backward(self, dy: Array) -> Array | None:
        """(N, filters, oh, ow) -> (N, C, H, W), or None when the input gradient is not needed."""
        n = dy.shape[0]
        dz = self.activation.backward(dy, out=self.writable(dy)).reshape(n, self.filters, -1)
        per_sample = self.scratch("dw", (n, self.filters, self._cols.shape[1]))
        np.matmul(dz, self._cols.transpose(0, 2, 1), out=per_sample)
        np.sum(per_sample, axis=0, out=self.grads["weight"].reshape(self.filters, -1))
        np.sum(dz, axis=(0, 2), out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        kernel = self.params["weight"].reshape(self.filters, -1)
        dcols = self.scratch("dcols", self._cols.shape)
        np.matmul(kernel.T, dz, out=dcols)
        _, c, h, w = self._x_shape
        top, bottom, left, right = self.pads
        dxp = self.scratch("dxp", (n, c, h + top + bottom, w + left + right))
        dxp.fill(0.0)
        col2im_add(dcols.reshape(n, c, self.kh, self.kw, self.oh, self.ow), dxp, self.stride)
        return dxp[:, :, top:top + h, left:left + w]
