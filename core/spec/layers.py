"""Layer specs: one frozen dataclass per layer type (parsing lives in ``core.spec.model``).

Attribute names are the JSON keys of DESIGN §3; every class has a class-level ``type``.
Defaults follow PyTorch, so a spec without initializers trains like the same torch model:
dense and conv2d weights default to ``torch_default`` (kaiming_uniform(a=√5)) and their
biases to ``torch_default`` too (U(±1/√fan_in)); any other weight rule gets zero biases, as
Keras does. batch_norm starts at gamma = 1, beta = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from core.spec.functions import ActivationFn, InitFn, as_activation, as_init

TORCH_DEFAULT = InitFn("torch_default")
ONES = InitFn("ones")
ZEROS = InitFn("zeros")
LINEAR = ActivationFn()


def _auto_bias(weight_init: InitFn) -> InitFn:
    return TORCH_DEFAULT if weight_init.type == "torch_default" else InitFn("zeros")


@dataclass(frozen=True)
class DenseSpec:
    """``dense``: ``y = activation(x @ W + b)``, W of shape (fan_in, units).

    ``bias_init`` None means: ``torch_default`` when ``weight_init`` is, else ``zeros``.
    """

    type: ClassVar[str] = "dense"
    units: int
    activation: ActivationFn = LINEAR
    weight_init: InitFn = TORCH_DEFAULT
    bias_init: InitFn | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        bias = _auto_bias(self.weight_init) if self.bias_init is None else as_init(self.bias_init)
        object.__setattr__(self, "bias_init", bias)


@dataclass(frozen=True)
class Conv2DSpec:
    """``conv2d`` on NCHW inputs; kernel (filters, in_channels, kh, kw) as in PyTorch.

    ``kernel_size`` is an int or (kh, kw); ``padding`` is "valid", "same" (stride 1 only,
    as torch) or an int of zeros on every side. ``bias_init`` None as in DenseSpec.
    """

    type: ClassVar[str] = "conv2d"
    filters: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: str | int = "valid"
    activation: ActivationFn = LINEAR
    weight_init: InitFn = TORCH_DEFAULT
    bias_init: InitFn | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kernel_size, list):
            object.__setattr__(self, "kernel_size", tuple(self.kernel_size))
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        bias = _auto_bias(self.weight_init) if self.bias_init is None else as_init(self.bias_init)
        object.__setattr__(self, "bias_init", bias)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        k = self.kernel_size
        return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


@dataclass(frozen=True)
class _Pool2DSpec:
    """Square ``pool_size`` windows; ``stride`` None means ``pool_size``."""

    type: ClassVar[str]
    pool_size: int = 2
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.pool_size)


@dataclass(frozen=True)
class MaxPool2DSpec(_Pool2DSpec):
    """``max_pool2d``: the maximum of each window."""

    type: ClassVar[str] = "max_pool2d"


@dataclass(frozen=True)
class AvgPool2DSpec(_Pool2DSpec):
    """``avg_pool2d``: the mean of each window."""

    type: ClassVar[str] = "avg_pool2d"


@dataclass(frozen=True)
class FlattenSpec:
    """``flatten``: (C, H, W) -> (C*H*W,), in C, H, W order as torch."""

    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class DropoutSpec:
    """``dropout``: inverted dropout with drop probability ``rate`` in [0, 1) (torch: 0.5)."""

    type: ClassVar[str] = "dropout"
    rate: float = 0.5


@dataclass(frozen=True)
class BatchNormSpec:
    """``batch_norm`` over features (N, F) or channels (N, C, H, W); torch's momentum/eps.

    ``weight_init`` / ``bias_init`` initialise gamma / beta (ones / zeros, as torch).
    """

    type: ClassVar[str] = "batch_norm"
    momentum: float = 0.1
    eps: float = 1e-5
    activation: ActivationFn = LINEAR
    weight_init: InitFn = ONES
    bias_init: InitFn = ZEROS

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))
        object.__setattr__(self, "weight_init", as_init(self.weight_init))
        object.__setattr__(self, "bias_init", as_init(self.bias_init))


@dataclass(frozen=True)
class ActivationSpec:
    """``activation``: a standalone element-wise activation layer."""

    type: ClassVar[str] = "activation"
    activation: ActivationFn = LINEAR

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", as_activation(self.activation))


LayerSpec = (DenseSpec | Conv2DSpec | MaxPool2DSpec | AvgPool2DSpec | FlattenSpec | DropoutSpec
             | BatchNormSpec | ActivationSpec)

# Layers that reshape nothing: the output has the input's shape.
SHAPE_PRESERVING = frozenset({"dropout", "batch_norm", "activation"})
SPATIAL = frozenset({"conv2d", "max_pool2d", "avg_pool2d"})


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """The JSON object of one layer, every default filled."""
    out: dict[str, Any] = {"type": layer.type}
    for name in layer.__dataclass_fields__:
        value = getattr(layer, name)
        if isinstance(value, ActivationFn | InitFn):
            value = value.to_json()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out
