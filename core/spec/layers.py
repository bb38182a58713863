"""Layer specs: one frozen dataclass per layer type, registered in ``LAYER_SPECS``.

A layer spec is the whole story of its type on the spec side: ``spec_params`` declares its
JSON fields (the parser, ``/openapi.json`` and ``docs/spec.md`` read them), and its methods
answer the output shape, the trainable parameter count, the forward FLOPs per sample and
the memory it holds for a batch -- the dry run and shape inference call them and switch on
nothing (their base is ``core.spec.layer_base.LayerSpec``). Adding a layer type is one class
here plus its implementation in ``core/layers/`` and its entry in ``core.layers.LAYERS``.

Defaults follow PyTorch, so a spec without initializers trains like the same torch model:
dense and conv2d weights default to ``torch_default`` (kaiming_uniform(a=√5)) and their
biases to ``torch_default`` too (U(±1/√fan_in)); any other weight rule gets zero biases, as
Keras does. batch_norm and layer_norm start at gamma = 1, beta = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import SpecError
from core.spec.fields import MISSING, Section, is_int, show
from core.spec.functions import (
    ActivationFn,
    InitFn,
    activation_param,
    as_activation,
    as_init,
    init_param,
)
from core.spec.layer_base import LayerSpec, Shape, activation_flops, activation_work, declared
from core.spec.params import Param

__all__ = ["LAYER_SPECS", "SHAPE_PRESERVING", "ActivationSpec", "AvgPool2DSpec", "BatchNormSpec",
           "Conv2DSpec", "DenseSpec", "DropoutSpec", "FlattenSpec", "LayerNormSpec", "LayerSpec",
           "MaxPool2DSpec", "Shape", "layer_to_dict"]


def _auto_bias(weight_init: InitFn) -> InitFn:
    return InitFn("torch_default") if weight_init.type == "torch_default" else InitFn("zeros")


@dataclass(frozen=True)
class DenseSpec(LayerSpec):
    """``dense``: ``y = activation(x @ W + b)``, W of shape (fan_in, units), on (F,) inputs."""

    type = "dense"
    spec_params = (
        Param("units", "integer", low=1, doc="Output features (torch's out_features).",
              example=10),
        activation_param("Applied to x @ W + b."),
        init_param("weight_init", "torch_default", "How W is drawn."),
        init_param("bias_init", None, "How b is drawn; absent: torch_default when weight_init "
                   "is torch_default, else zeros."),
    )
    input_ranks = (1,)
    flat_output = True
    key_hints = {"out_features": "unknown key; a dense layer's width is 'units'"}
    units: int
    activation: ActivationFn = declared(spec_params, "activation")
    weight_init: InitFn = declared(spec_params, "weight_init")
    bias_init: InitFn | None = declared(spec_params, "bias_init")

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        bias = _auto_bias(self.weight_init) if self.bias_init is None else as_init(self.bias_init)
        object.__setattr__(self, "bias_init", bias)

    def _output_shape(self, shape: Shape, path: str) -> Shape:
        return (self.units,)

    def param_count(self, in_shape: Shape) -> int:
        return in_shape[0] * self.units + self.units

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        # 2 per multiply-add, one bias add per output, then the activation
        return 2 * in_shape[0] * self.units + self.units + activation_flops(self.activation,
                                                                             self.units)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        # output, input gradient, the transposed input BLAS may copy for dW, and the
        # activation's cache and temporaries
        return self.units + 2 * in_shape[0] + activation_work(self.activation, self.units)


def _read_kernel_size(s: Section, p: Param) -> Any:
    """A positive int or a [height, width] pair of positive ints."""
    if not s.has(p.name) or not isinstance(s.data[p.name], list | tuple):
        return s.integer(p.name, p.default, minimum=1)
    value = s.data[p.name]
    if len(value) == 2 and all(is_int(v) and v >= 1 for v in value):
        return (int(value[0]), int(value[1]))
    s.error(p.name, f"must be a positive integer or a [height, width] pair, got {show(value)}")
    return None


def _read_padding(s: Section, p: Param) -> Any:
    if not s.has(p.name):
        return p.default
    raw = s.data[p.name]
    if raw in ("valid", "same") or (is_int(raw) and raw >= 0):
        return raw if isinstance(raw, str) else int(raw)
    s.error(p.name, f"must be 'valid', 'same' or an integer >= 0, got {show(raw)}")
    return p.default


_POSITIVE = {"type": "integer", "minimum": 1}


@dataclass(frozen=True)
class Conv2DSpec(LayerSpec):
    """``conv2d`` on (C, H, W) inputs; kernel (filters, in_channels, kh, kw) as in PyTorch.

    ``kernel_size`` is an int or (kh, kw); ``padding`` is "valid", "same" (stride 1 only,
    as torch) or an int of zeros on every side. ``bias_init`` None as in DenseSpec.
    """

    type = "conv2d"
    spec_params = (
        Param("filters", "integer", low=1, doc="Output channels (torch's out_channels).",
              example=8),
        Param("kernel_size", "custom", doc="Kernel height and width.", example=3,
              reader=_read_kernel_size,
              schema={"anyOf": [_POSITIVE, {"type": "array", "items": _POSITIVE,
                                            "minItems": 2, "maxItems": 2}],
                      "x-allowed": "a positive integer or a [height, width] pair"}),
        Param("stride", "integer", 1, low=1, doc="Step between windows, both directions."),
        Param("padding", "custom", "valid", reader=_read_padding,
              doc='Zeros around the input: "valid" (none), "same" (output size = input '
                  "size; stride 1 only) or a number per side.",
              schema={"anyOf": [{"enum": ["valid", "same"]},
                                {"type": "integer", "minimum": 0}],
                      "x-allowed": '"valid", "same" or an integer >= 0'}),
        activation_param("Applied to the convolution plus bias."),
        init_param("weight_init", "torch_default", "How the kernel is drawn."),
        init_param("bias_init", None, "How the bias is drawn; absent: torch_default when "
                   "weight_init is torch_default, else zeros."),
    )
    input_ranks = (3,)
    key_hints = {"out_channels": "unknown key; a conv2d layer's output channels are 'filters'"}
    filters: int
    kernel_size: int | tuple[int, int]
    stride: int = declared(spec_params, "stride")
    padding: str | int = declared(spec_params, "padding")
    activation: ActivationFn = declared(spec_params, "activation")
    weight_init: InitFn = declared(spec_params, "weight_init")
    bias_init: InitFn | None = declared(spec_params, "bias_init")

    def __post_init__(self) -> None:
        if isinstance(self.kernel_size, list):
            object.__setattr__(self, "kernel_size", tuple(self.kernel_size))
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        bias = _auto_bias(self.weight_init) if self.bias_init is None else as_init(self.bias_init)
        object.__setattr__(self, "bias_init", bias)

    @classmethod
    def check(cls, s: Section, values: dict[str, Any]) -> None:
        if values["padding"] == "same" and values["stride"] != 1:
            s.error("padding", f"'same' needs stride 1 (as in torch), got stride "
                    f"{values['stride']}; use an integer padding")
        if values["kernel_size"] is None:
            values["kernel_size"] = 1  # reported already; a stand-in keeps the dataclass whole

    @property
    def kernel_hw(self) -> tuple[int, int]:
        k = self.kernel_size
        return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))

    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) zeros, as torch: "same" puts the odd one at the end."""
        kh, kw = self.kernel_hw
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            top, left = (kh - 1) // 2, (kw - 1) // 2
            return (top, kh - 1 - top, left, kw - 1 - left)
        p = int(self.padding)
        return (p, p, p, p)

    def _padded(self, shape: Shape) -> tuple[int, int]:
        top, bottom, left, right = self.pads()
        return shape[1] + top + bottom, shape[2] + left + right

    def _output_shape(self, shape: Shape, path: str) -> Shape:
        kh, kw = self.kernel_hw
        hp, wp = self._padded(shape)
        if kh > hp or kw > wp:
            raise SpecError(f"{path}.kernel_size", f"kernel {kh}x{kw} is larger than its "
                            f"(padded) input {hp}x{wp}")
        return (self.filters, (hp - kh) // self.stride + 1, (wp - kw) // self.stride + 1)

    def param_count(self, in_shape: Shape) -> int:
        kh, kw = self.kernel_hw
        return self.filters * in_shape[0] * kh * kw + self.filters

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        kh, kw = self.kernel_hw
        out = math.prod(out_shape)
        return 2 * in_shape[0] * kh * kw * out + out + activation_flops(self.activation, out)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        # core.layers.conv per sample: padded planes and their gradient, im2col columns
        # (+ a row of ones) and their gradient over "wide" rows (stride 1: the padded
        # width), the GEMM result and its gradient, the NCHW output, the input gradient.
        kh, kw = self.kernel_hw
        c = in_shape[0]
        hp, wp = self._padded(in_shape)
        _, oh, ow = out_shape
        row = wp if self.stride == 1 else ow
        out = math.prod(out_shape)
        return (2 * c * hp * wp + (2 * c * kh * kw + 1) * oh * row
                + 2 * self.filters * oh * row + out + activation_work(self.activation, out)
                + math.prod(in_shape))


@dataclass(frozen=True)
class _Pool2DSpec(LayerSpec):
    """Square ``pool_size`` windows; ``stride`` None means ``pool_size``."""

    spec_params = (
        Param("pool_size", "integer", 2, low=1, doc="Window height and width."),
        Param("stride", "integer", None, low=1, doc="Step between windows; absent: "
              "pool_size."),
    )
    input_ranks = (3,)
    # output-sized arrays beyond the output that backward uses (measured, see test_dryrun)
    work_arrays: ClassVar[int]
    pool_size: int = declared(spec_params, "pool_size")
    stride: int | None = declared(spec_params, "stride")

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.pool_size)

    def _output_shape(self, shape: Shape, path: str) -> Shape:
        c, h, w = shape
        k, s = self.pool_size, int(self.stride or self.pool_size)
        if k > h or k > w:
            raise SpecError(f"{path}.pool_size", f"pool {k}x{k} is larger than its input "
                            f"{h}x{w}")
        return (c, (h - k) // s + 1, (w - k) // s + 1)

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return self.pool_size * self.pool_size * math.prod(out_shape)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        return (1 + self.work_arrays) * math.prod(out_shape) + math.prod(in_shape)


@dataclass(frozen=True)
class MaxPool2DSpec(_Pool2DSpec):
    """``max_pool2d``: the maximum of each window (torch.nn.MaxPool2d)."""

    type = "max_pool2d"
    # 2x2 windows with stride 2: five boolean masks, two index arrays (the windows'
    # top-left elements, kept, and the winners) and 16-bit offsets (float32: 6 arrays'
    # worth; 8 leaves room for NumPy's buffers); other windows: the window-hit masks and
    # an overlapping window's share
    work_arrays = 8


@dataclass(frozen=True)
class AvgPool2DSpec(_Pool2DSpec):
    """``avg_pool2d``: the mean of each window (torch.nn.AvgPool2d)."""

    type = "avg_pool2d"
    work_arrays = 4  # the scaled gradient, and NumPy's buffers for strided in-place adds


@dataclass(frozen=True)
class FlattenSpec(LayerSpec):
    """``flatten``: (C, H, W) -> (C*H*W,), in C, H, W order as torch.

    A view of a C-order input; one copy of a channel-major one (a conv's or pool's output,
    see core.layers.base).
    """

    type = "flatten"
    flat_output = True

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        return math.prod(out_shape) if len(in_shape) == 3 else 0

    def _output_shape(self, shape: Shape, path: str) -> Shape:
        return (math.prod(shape),)


@dataclass(frozen=True)
class DropoutSpec(LayerSpec):
    """``dropout``: inverted dropout, zeroing each value with probability ``rate``."""

    type = "dropout"
    key_hints = {"p": "unknown key; the dropout probability is 'rate'"}
    spec_params = (
        Param("rate", "number", 0.5, low=0.0, high=1.0, high_open=True,
              doc="The probability of zeroing a value in training (torch's p)."),
    )
    rate: float = declared(spec_params, "rate")

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return math.prod(out_shape)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        return 3 * math.prod(out_shape)  # the kept mask, the scaled mask, the output


@dataclass(frozen=True)
class BatchNormSpec(LayerSpec):
    """``batch_norm`` over features (N, F) or channels (N, C, H, W); torch's momentum/eps.

    ``weight_init`` / ``bias_init`` initialise gamma / beta (ones / zeros, as torch).
    """

    type = "batch_norm"
    spec_params = (
        Param("momentum", "number", 0.1, low=0.0, high=1.0,
              doc="Weight of the batch in the running statistics (torch's momentum)."),
        Param("eps", "number", 1e-5, low=0.0, low_open=True,
              doc="Added to the variance before its square root."),
        activation_param("Applied after the normalisation and gamma, beta."),
        init_param("weight_init", "ones", "How gamma is drawn.", vector=True),
        init_param("bias_init", "zeros", "How beta is drawn.", vector=True),
    )
    momentum: float = declared(spec_params, "momentum")
    eps: float = declared(spec_params, "eps")
    activation: ActivationFn = declared(spec_params, "activation")
    weight_init: InitFn = declared(spec_params, "weight_init")
    bias_init: InitFn = declared(spec_params, "bias_init")

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        object.__setattr__(self, "bias_init", as_init(self.bias_init))

    def param_count(self, in_shape: Shape) -> int:
        return 2 * in_shape[0]

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        out = math.prod(out_shape)
        return 4 * out + activation_flops(self.activation, out)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        # normalised input (kept), its square, the output, dz * xhat, the input gradient;
        # (C, H, W): C-order copies of a channel-major input and gradient (core.layers.base)
        out = math.prod(out_shape)
        copies = 2 * out if len(in_shape) == 3 else 0
        return 5 * out + copies + activation_work(self.activation, out)


@dataclass(frozen=True)
class LayerNormSpec(LayerSpec):
    """``layer_norm``: torch.nn.LayerNorm over all of one sample's values.

    On (F,) inputs it normalises the F features of each row (normalized_shape = F); on
    (C, H, W) inputs all C*H*W values of each sample, exactly torch.nn.LayerNorm([C, H, W])
    (gamma and beta then have the shape (C, H, W)). Biased variance; training and eval
    compute the same thing (no running statistics).
    """

    type = "layer_norm"
    key_hints = {"normalized_shape": "unknown key; layer_norm normalises over the whole sample, "
                                     "its shape comes from the input"}
    spec_params = (
        Param("eps", "number", 1e-5, low=0.0, low_open=True,
              doc="Added to the variance before its square root."),
        Param("elementwise_affine", "boolean", True,
              doc="Learn a gamma (ones) and beta (zeros) per normalised value."),
    )
    eps: float = declared(spec_params, "eps")
    elementwise_affine: bool = declared(spec_params, "elementwise_affine")

    def param_count(self, in_shape: Shape) -> int:
        return 2 * math.prod(in_shape) if self.elementwise_affine else 0

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        # per value: mean, centre, square and sum, scale by 1/std, gamma, beta
        return 7 * math.prod(out_shape)

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        # normalised input (kept), its square, the output, dy * xhat, the input gradient;
        # (C, H, W): C-order copies of a channel-major input and gradient (core.layers.base)
        return (7 if len(in_shape) == 3 else 5) * math.prod(out_shape)


@dataclass(frozen=True)
class ActivationSpec(LayerSpec):
    """``activation``: a standalone element-wise activation layer."""

    type = "activation"
    spec_params = (activation_param("The function applied to every value.", default=MISSING),)
    activation: ActivationFn

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        return activation_flops(self.activation, math.prod(out_shape))

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        out = math.prod(out_shape)
        return out + activation_work(self.activation, out)


LAYER_SPECS: dict[str, type[LayerSpec]] = {
    cls.type: cls
    for cls in (DenseSpec, Conv2DSpec, MaxPool2DSpec, AvgPool2DSpec, FlattenSpec, DropoutSpec,
                BatchNormSpec, LayerNormSpec, ActivationSpec)
}

# Layers that reshape nothing: the output has the input's shape.
SHAPE_PRESERVING = frozenset(name for name, cls in LAYER_SPECS.items()
                             if cls.preserves_shape())


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """The JSON object of one layer, every default filled."""
    return layer.to_dict()
