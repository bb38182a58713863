"""Activations and initializers in a spec: parsed from what their registries declare.

The implementations own the declarations: each class of ``core.activations.ACTIVATIONS``
and each entry of ``core.initializers.INITIALIZERS`` lists its JSON fields as
``spec_params`` (leaky_relu's ``alpha``, normal's ``mean``/``std``, ...). This module reads
them to parse a name (``"relu"``) or an object (``{"type": "leaky_relu", "alpha": 0.2}``)
into an :class:`ActivationFn` / :class:`InitFn` with every parameter filled in, to describe
both in JSON Schema, and to make the layer fields that hold them (:func:`activation_param`,
:func:`init_param`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from core.activations import ACTIVATIONS
from core.errors import SpecError
from core.initializers import INITIALIZERS
from core.spec.fields import Section, show, unknown_name_message
from core.spec.params import Param, defaults, object_schema

# name -> {parameter: default}, read from the registries (torch's defaults).
ACTIVATION_PARAMS: dict[str, dict[str, Any]] = {
    name: defaults(cls.spec_params) for name, cls in ACTIVATIONS.items()}
INIT_PARAMS: dict[str, dict[str, Any]] = {
    name: defaults(entry.spec_params) for name, entry in INITIALIZERS.items()}

# Rules that need the fan of a weight matrix: meaningless for a vector of per-feature
# parameters (batch_norm's gamma and beta).
FAN_INITIALIZERS = frozenset(name for name, entry in INITIALIZERS.items()
                             if entry.needs_matrix)
VECTOR_INITIALIZERS = tuple(name for name, entry in INITIALIZERS.items()
                            if not entry.needs_matrix and name != "torch_default")


@dataclass(frozen=True)
class ActivationFn:
    """An activation function: ``type`` (a name of ACTIVATIONS) and its ``alpha``.

    ``alpha`` is the negative slope of leaky_relu or the scale of elu, filled with the
    default its class declares; None for every other activation.
    """

    type: str = "linear"
    alpha: float | None = None

    def __post_init__(self) -> None:
        for key, default in ACTIVATION_PARAMS.get(self.type, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)

    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ACTIVATION_PARAMS.get(self.type, {})}

    def to_json(self) -> str | dict[str, Any]:
        """The name alone when the function has no parameters, else the full object."""
        params = self.params()
        return {"type": self.type, **params} if params else self.type


@dataclass(frozen=True)
class InitFn:
    """A weight initializer: ``type`` (a name of INITIALIZERS) and its parameters.

    ``value`` (constant), ``mean``/``std`` (normal) and ``a``/``b`` (uniform bounds) are
    filled with the declared defaults for the initializers that take them, None otherwise.
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


# Every declared parameter has a field to live in (tests/core/test_spec.py checks it too).
assert {k for d in ACTIVATION_PARAMS.values() for k in d} <= {f.name for f in fields(ActivationFn)}
assert {k for d in INIT_PARAMS.values() for k in d} <= {f.name for f in fields(InitFn)}


def as_activation(value: ActivationFn | str | Mapping[str, Any] | None) -> ActivationFn:
    """Coerce what a Python caller passes to a layer dataclass (no validation)."""
    if isinstance(value, ActivationFn):
        return value
    if value is None:
        return ActivationFn()
    if isinstance(value, str):
        return ActivationFn(value)
    return ActivationFn(**dict(value))


def as_init(value: InitFn | str | Mapping[str, Any]) -> InitFn:
    """Coerce what a Python caller passes to a layer dataclass (no validation)."""
    if isinstance(value, InitFn):
        return value
    if isinstance(value, str):
        return InitFn(value)
    return InitFn(**dict(value))


def parse_activation(value: Any, path: str, errors: list[SpecError]) -> ActivationFn:
    """``"relu"`` or ``{"type": "leaky_relu", "alpha": 0.2}`` -> ActivationFn."""
    name, params = _parse_function(value, path, errors, "activation",
                                   {n: c.spec_params for n, c in ACTIVATIONS.items()})
    if name is None:
        return ActivationFn()
    return ActivationFn(name, **params)


def parse_init(value: Any, path: str, errors: list[SpecError]) -> InitFn | None:
    """``"he_normal"`` or ``{"type": "normal", "mean": 0, "std": 0.01}`` -> InitFn."""
    name, params = _parse_function(value, path, errors, "initializer",
                                   {n: e.spec_params for n, e in INITIALIZERS.items()})
    if name is None:
        return None
    init = InitFn(name, **params)
    check = INITIALIZERS[name].check
    broken = check(init.params()) if check is not None else None
    if broken is not None:
        errors.append(SpecError(f"{path}.{broken[0]}", broken[1]))
    return init


def _parse_function(value: Any, path: str, errors: list[SpecError], kind: str,
                    registry: Mapping[str, tuple[Param, ...]],
                    ) -> tuple[str | None, dict[str, Any]]:
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
    params = registry[name]
    section.check_keys(["type", *(p.name for p in params)])
    return name, {p.name: p.read(section) for p in params}


def function_schema(kind: str, registry: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of an activation or initializer: a name, or an object with its fields.

    ``registry`` maps names to entries with ``spec_params`` and a docstring.
    """
    objects = []
    for name, entry in registry.items():
        schema = object_schema(entry.spec_params, title=name,
                               description=(entry.__doc__ or "").strip().split("\n")[0],
                               extra={"type": {"const": name}})
        schema["required"] = ["type", *schema.get("required", [])]
        objects.append(schema)
    return {"anyOf": [{"enum": list(registry)}, {"oneOf": objects}],
            "x-allowed": f"an {kind} name or an object with its 'type' and parameters"}


ACTIVATION_SCHEMA = function_schema("activation", ACTIVATIONS)
INITIALIZER_SCHEMA = function_schema("initializer", INITIALIZERS)


def activation_param(doc: str, default: Any = "linear") -> Param:
    """A layer field holding an activation (a name or an object); absent: ``default``."""

    def read(s: Section, p: Param) -> Any:
        if not s.has(p.name):
            if p.required:
                s.error(p.name, "is required")
            return ActivationFn() if p.required else as_activation(p.default)
        return parse_activation(s.data[p.name], s.field(p.name), s.errors)

    return Param("activation", "custom", default, doc=doc, reader=read,
                 schema=ACTIVATION_SCHEMA, example="relu")


def init_param(name: str, default: Any, doc: str, *, vector: bool = False) -> Param:
    """A layer field holding an initializer; absent: ``default`` (None: the layer decides).

    ``vector`` fields initialise one value per feature (gamma, beta): the fan-based rules
    are refused and ``torch_default`` means ``default``, as torch initialises them.
    """

    def read(s: Section, p: Param) -> Any:
        if not s.has(p.name):
            return None if p.default is None else as_init(p.default)
        init = parse_init(s.data[p.name], s.field(p.name), s.errors)
        if vector and init is not None and init.type in FAN_INITIALIZERS:
            s.error(p.name, f"{init.type!r} needs a weight matrix; {s.data.get('type')}'s "
                    f"parameters are vectors (use one of {list(VECTOR_INITIALIZERS)})")
            init = None
        if init is None or (vector and init.type == "torch_default"):
            return None if p.default is None else as_init(p.default)
        return init

    schema = dict(INITIALIZER_SCHEMA)
    if vector:
        schema["x-allowed"] = f"one of {list(VECTOR_INITIALIZERS)}, as a name or an object"
    return Param(name, "custom", default, doc=doc, reader=read, schema=schema)
