"""Activation and initializer names, their parameters and defaults: the spec's registry.

The layer code keeps its own ``ACTIVATIONS`` / ``INITIALIZERS`` dicts of implementations;
these name sets must equal their keys (a test checks it). Keeping the names here means the
spec never imports layer code, and layer code imports nothing from the spec.

Both may be written as a name (``"relu"``) or an object (``{"type": "leaky_relu",
"alpha": 0.2}``); either way they become an :class:`ActivationFn` / :class:`InitFn` with
every parameter of that function filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import SpecError
from core.spec.fields import Section, show, unknown_name_message

# name -> {parameter: default}; defaults are torch's (leaky_relu negative_slope 0.01, elu 1.0).
ACTIVATION_PARAMS: dict[str, dict[str, float]] = {
    "linear": {}, "relu": {}, "leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0},
    "gelu": {}, "sigmoid": {}, "tanh": {}, "softmax": {}, "softplus": {}, "silu": {},
}

# name -> {parameter: default}; torch.nn.init's defaults (normal_ N(0, 1), uniform_ U(0, 1)).
INIT_PARAMS: dict[str, dict[str, float]] = {
    "zeros": {}, "ones": {}, "constant": {"value": 0.0},
    "normal": {"mean": 0.0, "std": 1.0}, "uniform": {"a": 0.0, "b": 1.0},
    "glorot_uniform": {}, "glorot_normal": {}, "he_uniform": {}, "he_normal": {},
    "lecun_uniform": {}, "lecun_normal": {}, "torch_default": {},
}

# Rules that need the fan of a weight matrix: meaningless for batch_norm's vectors.
FAN_INITIALIZERS = frozenset({"glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                              "lecun_uniform", "lecun_normal"})


@dataclass(frozen=True)
class ActivationFn:
    """An activation function: ``type`` (a name of ACTIVATION_PARAMS) and its ``alpha``.

    ``alpha`` is the negative slope of leaky_relu (default 0.01) or the scale of elu
    (default 1.0); None for every other activation.
    """

    type: str = "linear"
    alpha: float | None = None

    def __post_init__(self) -> None:
        defaults = ACTIVATION_PARAMS.get(self.type, {})
        if "alpha" in defaults and self.alpha is None:
            object.__setattr__(self, "alpha", defaults["alpha"])

    def to_json(self) -> str | dict[str, Any]:
        """The name alone when the function has no parameters, else the full object."""
        if self.alpha is None:
            return self.type
        return {"type": self.type, "alpha": self.alpha}


@dataclass(frozen=True)
class InitFn:
    """A weight initializer: ``type`` (a name of INIT_PARAMS) and its parameters.

    ``value`` (constant), ``mean``/``std`` (normal) and ``a``/``b`` (uniform bounds) are
    filled with torch's defaults for the initializers that take them, None otherwise.
    """

    type: str = "torch_default"
    value: float | None = None
    mean: float | None = None
    std: float | None = None
    a: float | None = None
    b: float | None = None

    def __post_init__(self) -> None:
        for key, default in INIT_PARAMS.get(self.type, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)

    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in INIT_PARAMS.get(self.type, {})}

    def to_json(self) -> str | dict[str, Any]:
        params = self.params()
        return {"type": self.type, **params} if params else self.type


def as_activation(value: ActivationFn | str | Mapping[str, Any] | None) -> ActivationFn:
    """Coerce what a Python caller passes to a layer dataclass (no validation)."""
    if isinstance(value, ActivationFn):
        return value
    if value is None:
        return ActivationFn()
    if isinstance(value, str):
        return ActivationFn(value)
    return ActivationFn(str(value["type"]), value.get("alpha"))


def as_init(value: InitFn | str | Mapping[str, Any]) -> InitFn:
    """Coerce what a Python caller passes to a layer dataclass (no validation)."""
    if isinstance(value, InitFn):
        return value
    if isinstance(value, str):
        return InitFn(value)
    return InitFn(**dict(value))


def parse_activation(value: Any, path: str, errors: list[SpecError]) -> ActivationFn:
    """``"relu"`` or ``{"type": "leaky_relu", "alpha": 0.2}`` -> ActivationFn."""
    name, params = _parse_function(value, path, errors, "activation", ACTIVATION_PARAMS)
    if name is None:
        return ActivationFn()
    return ActivationFn(name, **params)


def parse_init(value: Any, path: str, errors: list[SpecError]) -> InitFn | None:
    """``"he_normal"`` or ``{"type": "normal", "mean": 0, "std": 0.01}`` -> InitFn."""
    name, params = _parse_function(value, path, errors, "initializer", INIT_PARAMS)
    if name is None:
        return None
    init = InitFn(name, **params)
    if init.type == "normal" and init.std is not None and init.std <= 0:
        errors.append(SpecError(f"{path}.std", f"must be a positive number, got {init.std!r}"))
    if init.type == "uniform" and init.a is not None and init.b is not None and init.a >= init.b:
        errors.append(SpecError(f"{path}.b", f"must be greater than a ({init.a!r}), "
                                f"got {init.b!r}"))
    return init


def _parse_function(value: Any, path: str, errors: list[SpecError], kind: str,
                    registry: Mapping[str, Mapping[str, float]],
                    ) -> tuple[str | None, dict[str, float]]:
    if isinstance(value, str):
        if value in registry:
            return value, {}
        errors.append(SpecError(path, unknown_name_message(kind, value, registry)))
        return None, {}
    if not isinstance(value, Mapping):
        errors.append(SpecError(path, f"must be a {kind} name or an object with a 'type', "
                                f"got {show(value)}"))
        return None, {}
    section = Section(value, path, errors)
    name = value.get("type")
    if not isinstance(name, str) or name not in registry:
        section.error("type", "is required" if name is None
                      else unknown_name_message(kind, name, registry))
        return None, {}
    defaults = registry[str(name)]
    section.check_keys(["type", *defaults])
    params = {key: section.number(key, default) for key, default in defaults.items()}
    return str(name), params
