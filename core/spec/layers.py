"""Layer specs: one frozen dataclass per layer type, and the ModelSpec that lists them.

Attribute names are the JSON keys of DESIGN §3; every class has a class-level ``type``.
Defaults follow PyTorch, so a spec without initializers trains like the same torch model:
dense and conv2d weights default to ``torch_default`` (kaiming_uniform(a=√5)) and their
biases to ``torch_default`` too (U(±1/√fan_in)); any other weight rule gets zero biases, as
Keras does. batch_norm starts at gamma = 1, beta = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import SpecError
from core.spec.fields import MISSING, Section, is_int, show, unknown_name_message
from core.spec.functions import (
    FAN_INITIALIZERS,
    ActivationFn,
    InitFn,
    as_activation,
    as_init,
    parse_activation,
    parse_init,
)

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
class MaxPool2DSpec:
    """``max_pool2d``: square ``pool_size`` windows; ``stride`` None means ``pool_size``."""

    type: ClassVar[str] = "max_pool2d"
    pool_size: int = 2
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.pool_size)


@dataclass(frozen=True)
class AvgPool2DSpec:
    """``avg_pool2d``: square ``pool_size`` windows; ``stride`` None means ``pool_size``."""

    type: ClassVar[str] = "avg_pool2d"
    pool_size: int = 2
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.pool_size)


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


def _weights(s: Section, *, vector: bool) -> tuple[ActivationFn, InitFn, InitFn | None]:
    activation = (parse_activation(s.data["activation"], s.field("activation"), s.errors)
                  if s.has("activation") else ActivationFn())
    inits: list[InitFn | None] = []
    for key in ("weight_init", "bias_init"):
        init = parse_init(s.data[key], s.field(key), s.errors) if s.has(key) else None
        if vector and init is not None and init.type in FAN_INITIALIZERS:
            s.error(key, f"{init.type!r} needs a weight matrix; batch_norm's parameters are "
                    "vectors (use ones, zeros, constant, normal or uniform)")
            init = None
        inits.append(init)
    weight = inits[0]
    if vector:
        weight = InitFn("ones") if weight is None or weight.type == "torch_default" else weight
        bias = inits[1]
        return activation, weight, (InitFn("zeros") if bias is None
                                    or bias.type == "torch_default" else bias)
    return activation, weight or TORCH_DEFAULT, inits[1]


def _pair(s: Section, key: str, default: Any) -> Any:
    """A positive int or a [h, w] pair of positive ints."""
    if not s.has(key):
        return s.integer(key, default, minimum=1)
    value = s.data[key]
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(is_int(v) and v >= 1 for v in value):
            return (int(value[0]), int(value[1]))
        s.error(key, f"must be a positive integer or a [height, width] pair, got {show(value)}")
        return 1
    return s.integer(key, default, minimum=1)


def _dense(s: Section) -> LayerSpec:
    s.check_keys(("type", "units", "activation", "weight_init", "bias_init"))
    activation, weight, bias = _weights(s, vector=False)
    return DenseSpec(s.integer("units", MISSING, minimum=1) or 1, activation, weight, bias)


def _conv2d(s: Section) -> LayerSpec:
    s.check_keys(("type", "filters", "kernel_size", "stride", "padding", "activation",
                  "weight_init", "bias_init"))
    filters = s.integer("filters", MISSING, minimum=1) or 1
    kernel = _pair(s, "kernel_size", MISSING) or 1
    stride = s.integer("stride", 1, minimum=1)
    padding: str | int = "valid"
    if s.has("padding"):
        raw = s.data["padding"]
        if raw in ("valid", "same") or (is_int(raw) and raw >= 0):
            padding = raw if isinstance(raw, str) else int(raw)
        else:
            s.error("padding", f"must be 'valid', 'same' or an integer >= 0, got {show(raw)}")
    if padding == "same" and stride != 1:
        s.error("padding", f"'same' needs stride 1 (as in torch), got stride {stride}; "
                "use an integer padding")
    activation, weight, bias = _weights(s, vector=False)
    return Conv2DSpec(filters, kernel, stride, padding, activation, weight, bias)


def _pool(cls: type[MaxPool2DSpec] | type[AvgPool2DSpec]) -> Callable[[Section], LayerSpec]:
    def parse(s: Section) -> LayerSpec:
        s.check_keys(("type", "pool_size", "stride"))
        size = s.integer("pool_size", 2, minimum=1)
        return cls(size, s.integer("stride", None, minimum=1))
    return parse


def _flatten(s: Section) -> LayerSpec:
    s.check_keys(("type",))
    return FlattenSpec()


def _dropout(s: Section) -> LayerSpec:
    s.check_keys(("type", "rate"))
    return DropoutSpec(s.number("rate", 0.5, low=0.0, high=1.0, high_open=True))


def _batch_norm(s: Section) -> LayerSpec:
    s.check_keys(("type", "momentum", "eps", "activation", "weight_init", "bias_init"))
    momentum = s.number("momentum", 0.1, low=0.0, high=1.0)
    eps = s.number("eps", 1e-5, low=0.0, low_open=True)
    activation, weight, bias = _weights(s, vector=True)
    return BatchNormSpec(momentum, eps, activation, weight, bias or InitFn("zeros"))


def _activation(s: Section) -> LayerSpec:
    s.check_keys(("type", "activation"))
    if not s.has("activation"):
        s.error("activation", "is required")
        return ActivationSpec()
    return ActivationSpec(parse_activation(s.data["activation"], s.field("activation"),
                                           s.errors))


LAYER_PARSERS: dict[str, Callable[[Section], LayerSpec]] = {
    "dense": _dense,
    "conv2d": _conv2d,
    "max_pool2d": _pool(MaxPool2DSpec),
    "avg_pool2d": _pool(AvgPool2DSpec),
    "flatten": _flatten,
    "dropout": _dropout,
    "batch_norm": _batch_norm,
    "activation": _activation,
}
LAYER_TYPES = frozenset(LAYER_PARSERS)


def parse_layer(value: Any, path: str, errors: list[SpecError]) -> LayerSpec | None:
    """One element of ``model.layers``; None (errors recorded) when its type is unusable."""
    s = Section.of(value, path, errors)
    if s is None:
        return None
    kind = s.data.get("type")
    if kind not in LAYER_PARSERS:
        s.error("type", "is required" if kind is None
                else unknown_name_message("layer type", kind, LAYER_PARSERS))
        return None
    return LAYER_PARSERS[kind](s)


@dataclass(frozen=True)
class ModelSpec:
    """``model``: the layers in order; parameter names are ``"{index}.{name}"``."""

    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Validate a ``{"layers": [...]}`` object; raises SpecError / SpecErrors."""
        errors: list[SpecError] = []
        model = parse_model(data, "model", errors)
        if errors:
            raise SpecError.many(errors) if len(errors) > 1 else errors[0]
        assert model is not None
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [layer_to_dict(layer) for layer in self.layers]}


def parse_model(value: Any, path: str, errors: list[SpecError]) -> ModelSpec | None:
    s = Section.of(value, path, errors)
    if s is None:
        return None
    s.check_keys(("layers",))
    raw = s.data.get("layers")
    if not isinstance(raw, list) or not raw:
        s.error("layers", "must be a non-empty list of layers" if raw is not None
                else "is required")
        return None
    layers = [parse_layer(item, f"{s.field('layers')}[{i}]", errors)
              for i, item in enumerate(raw)]
    _check_order(layers, s.field("layers"), errors)
    return ModelSpec(tuple(layer for layer in layers if layer is not None))


def _check_order(layers: list[LayerSpec | None], path: str, errors: list[SpecError]) -> None:
    """Spatial layers after the input was made flat can never work, whatever the input."""
    flat_at: int | None = None
    for i, layer in enumerate(layers):
        if layer is None:
            continue
        if layer.type in SPATIAL and flat_at is not None:
            made_flat = layers[flat_at]
            assert made_flat is not None
            errors.append(SpecError(
                f"{path}[{i}].type",
                f"{layer.type} needs (C, H, W) inputs, but {path}[{flat_at}] "
                f"({made_flat.type}) already made them flat; move it before that layer"))
        elif layer.type in ("dense", "flatten") and flat_at is None:
            flat_at = i
