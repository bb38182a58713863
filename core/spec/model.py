"""``model``: parsing each layer object into its dataclass, and the ModelSpec of them all."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import SpecError
from core.spec.fields import MISSING, Section, is_int, show, unknown_name_message
from core.spec.functions import FAN_INITIALIZERS, ActivationFn, InitFn, parse_activation, parse_init
from core.spec.layers import (
    SPATIAL,
    TORCH_DEFAULT,
    ActivationSpec,
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    LayerSpec,
    MaxPool2DSpec,
    layer_to_dict,
)


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


LAYER_KEY_HINTS = {
    "kernel_initializer": "unknown key; the weight initializer is 'weight_init'",
    "bias_initializer": "unknown key; the bias initializer is 'bias_init'",
    "out_features": "unknown key; a dense layer's width is 'units'",
    "out_channels": "unknown key; a conv2d layer's output channels are 'filters'",
    "p": "unknown key; the dropout probability is 'rate'",
    "alpha": "unknown key; give the activation as an object, e.g. "
             "{\"type\": \"leaky_relu\", \"alpha\": 0.2}",
}


def parse_layer(value: Any, path: str, errors: list[SpecError]) -> LayerSpec | None:
    """One element of ``model.layers``; None (errors recorded) when its type is unusable."""
    s = Section.of(value, path, errors)
    if s is None:
        return None
    s.hints = LAYER_KEY_HINTS
    kind = s.data.get("type")
    if not isinstance(kind, str) or kind not in LAYER_PARSERS:
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
