"""``model``: each layer object parsed by its registered spec class, and the ModelSpec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import SpecError
from core.spec.fields import Section, unknown_name_message
from core.spec.layers import LAYER_SPECS, LayerSpec, layer_to_dict

LAYER_TYPES = frozenset(LAYER_SPECS)


# Keys users bring from Keras or PyTorch, for any layer; a type's own are its key_hints.
LAYER_KEY_HINTS = {
    "kernel_initializer": "unknown key; the weight initializer is 'weight_init'",
    "bias_initializer": "unknown key; the bias initializer is 'bias_init'",
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
    if not isinstance(kind, str) or kind not in LAYER_SPECS:
        s.error("type", "is required" if kind is None
                else unknown_name_message("layer type", kind, LAYER_SPECS))
        return None
    return LAYER_SPECS[kind].parse(s)


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
    """Image-only layers after the input was made flat can never work, whatever the input."""
    flat_at: int | None = None
    for i, layer in enumerate(layers):
        if layer is None:
            continue
        if 1 not in layer.input_ranks and flat_at is not None:
            made_flat = layers[flat_at]
            assert made_flat is not None
            errors.append(SpecError(
                f"{path}[{i}].type",
                f"{layer.type} needs (C, H, W) inputs, but {path}[{flat_at}] "
                f"({made_flat.type}) already made them flat; move it before that layer"))
        elif layer.flat_output and flat_at is None:
            flat_at = i
