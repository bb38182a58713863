"""The JSON Schema (2020-12) of a job spec, generated from the Params that the parser reads.

Every section declares its fields once (``core.spec.training``, ``core.spec.job``) and every
registry (layers, activations, initializers, losses, optimizers, schedules) is a dict
``type -> class`` whose classes list their fields in ``spec_params``. This module turns both
into one schema: a registry becomes a ``oneOf`` of closed objects, one per type, each fixing
``type`` with ``const``, so a validator picks exactly one branch and Swagger UI lists every
type with its fields, defaults and bounds.

The schema describes ``core.spec``'s checks; it does not replace them. Rules across fields
(a warmup shorter than the epochs, a monitor that needs a validation split, a final softmax
before cross_entropy) are only in the parser, which names the field at fault.

Definitions are referenced as ``#/$defs/<Name>``; :func:`job_spec_schema` takes a
``ref_template`` so ``/openapi.json`` can keep them under ``#/components/schemas``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.activations import ACTIVATIONS
from core.initializers import INITIALIZERS
from core.optimizers import OPTIMIZERS
from core.schedules import SCHEDULES
from core.spec.job import BUILTIN_PREFIX, CHECKPOINTS, JOB_PARAMS, REGULARIZATION, TRAINING
from core.spec.layers import LAYER_SPECS
from core.spec.optim import DEFAULT_OPTIMIZER, OPTIMIZER_ALIASES, Alias, schedule_params
from core.spec.params import Param, object_schema
from core.spec.training import (
    CHECKPOINT_PARAMS,
    DEFAULT_LOSS,
    EARLY_STOPPING,
    EARLY_STOPPING_PARAMS,
    LOSS_SPECS,
    REGULARIZATION_PARAMS,
    TRAINING_PARAMS,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
LOCAL_REF = "#/$defs/"
ROOT = "JobSpec"


def spec_params_of(entries: Mapping[str, type]) -> Callable[[str], tuple[Param, ...]]:
    """The protocol's default: a type's fields are its class's ``spec_params``."""
    def fields(name: str) -> tuple[Param, ...]:
        params: tuple[Param, ...] = getattr(entries[name], "spec_params")  # noqa: B009
        return params
    return fields


@dataclass(frozen=True)
class Registry:
    """A ``type -> class`` registry as the schema and the reference show it.

    ``title`` names the union's definition (its entries are ``"<title>.<type>"``), ``path``
    where a spec holds one; only ``default_type`` may be written without ``type``.
    ``fields`` gives a type's JSON fields besides ``type`` (default: the class's
    ``spec_params``); ``aliases`` maps other accepted names to (the type they mean, what
    they mean in words).
    """

    title: str
    path: str
    entries: Mapping[str, Any]
    default_type: str | None = None
    fields: Callable[[str], tuple[Param, ...]] | None = None
    aliases: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # False: the fields that hold one carry its schema inline (activations, initializers:
    # a name or an object), so it has no definitions of its own; the reference lists it.
    in_schema: bool = True

    def params(self, name: str) -> tuple[Param, ...]:
        return (self.fields or spec_params_of(self.entries))(name)

    def alias_meanings(self, names: Iterable[str]) -> dict[str, list[str]]:
        """``{meaning: [the aliases that mean it]}`` of ``names``."""
        out: dict[str, list[str]] = {}
        for name in names:
            out.setdefault(self.aliases[name][1], []).append(name)
        return out

    def alias_groups(self) -> dict[str, list[str]]:
        """``{type: [its aliases]}`` for the types that have some."""
        groups: dict[str, list[str]] = {}
        for alias, (target, _) in self.aliases.items():
            groups.setdefault(target, []).append(alias)
        return groups


def alias_words(alias: Alias) -> str:
    """What a classic optimizer name means: ``momentum 0.9, batch_size 1`` and so on."""
    fixed = [f"{key} {json.dumps(value)}" for key, value in alias.sgd_defaults]
    if alias.batch_size is not None:
        fixed.append(f"training.batch_size {json.dumps(alias.batch_size)}")
    return alias.meaning + (f" ({', '.join(fixed)})" if fixed else "")


# The registries that declare spec_params, in the order docs/spec.md shows them.
REGISTRIES: tuple[Registry, ...] = (
    Registry("Layer", "model.layers", LAYER_SPECS),
    Registry("Activation", "activations", ACTIVATIONS, in_schema=False),
    Registry("Initializer", "initializers", INITIALIZERS, in_schema=False),
    Registry("Loss", "loss", LOSS_SPECS, DEFAULT_LOSS),
    Registry("Optimizer", "optimizer", OPTIMIZERS, DEFAULT_OPTIMIZER,
             aliases={name: ("sgd", alias_words(alias))
                      for name, alias in OPTIMIZER_ALIASES.items()}),
    Registry("LrSchedule", "training.lr_schedule", SCHEDULES, fields=schedule_params),
)


def summary(cls: type) -> str:
    """The first line of a registry class's docstring: its one-line summary."""
    return (cls.__doc__ or "").strip().split("\n")[0].strip()


def entry_schema(kind: dict[str, Any], params: tuple[Param, ...], *, title: str,
                 description: str, type_required: bool = True) -> dict[str, Any]:
    """One registry entry as a closed object: ``type`` (``kind``), then its params."""
    body = object_schema(params)
    out: dict[str, Any] = {
        "type": "object", "title": title, "description": description,
        "properties": {"type": kind, **body["properties"]},
        "additionalProperties": False,
    }
    required = (["type"] if type_required else []) + body.get("required", [])
    if required:
        out["required"] = required
    return out


def registry_defs(registry: Registry) -> dict[str, dict[str, Any]]:
    """``{"<title>.<type>": entry schema}`` for each type, and one per group of aliases."""
    defs: dict[str, dict[str, Any]] = {}
    for name, cls in registry.entries.items():
        default = name == registry.default_type
        kind: dict[str, Any] = {"const": name, **({"default": name} if default else {})}
        defs[f"{registry.title}.{name}"] = entry_schema(
            kind, registry.params(name), title=name, description=summary(cls),
            type_required=not default)
    for target, names in registry.alias_groups().items():
        meanings = "; ".join(f"{', '.join(group)}: {words}"
                             for words, group in registry.alias_meanings(names).items())
        defs[f"{registry.title}.{target}_aliases"] = entry_schema(
            {"enum": names}, registry.params(target), title=f"{target} aliases",
            description=f"Classic names for {target} with its fields ({meanings}).")
    return defs


def one_of(names: Iterable[str], description: str) -> dict[str, Any]:
    """A union of definitions by name, each a closed object with its own ``type``."""
    return {"description": description,
            "oneOf": [{"$ref": LOCAL_REF + name} for name in names]}


def _sections() -> dict[str, dict[str, Any]]:
    """The sections that are not registries: a closed object of their params each,
    described by the doc of the field that holds it."""
    table: tuple[tuple[Param, tuple[Param, ...]], ...] = (
        (TRAINING, TRAINING_PARAMS), (EARLY_STOPPING, EARLY_STOPPING_PARAMS),
        (REGULARIZATION, REGULARIZATION_PARAMS), (CHECKPOINTS, CHECKPOINT_PARAMS))
    return {definition(holder): object_schema(params, title=definition(holder),
                                              description=holder.doc)
            for holder, params in table}


def definition(holder: Param) -> str:
    """The definition a section's field points at (``{"$ref": "#/$defs/Training"}``)."""
    ref = str((holder.schema or {}).get("$ref", ""))
    assert ref.startswith(LOCAL_REF), f"{holder.name} does not point at a definition"
    return ref[len(LOCAL_REF):]


def _registries() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for registry in (r for r in REGISTRIES if r.in_schema):
        defs = registry_defs(registry)
        default = "" if registry.default_type is None else \
            f" (default {registry.default_type})"
        out.update(defs)
        out[registry.title] = one_of(defs, f"`{registry.path}` by type{default}.")
    return out


def _model() -> dict[str, dict[str, Any]]:
    return {"Model": {
        "type": "object", "title": "Model", "description": "The layers, applied in order.",
        "properties": {"layers": {"type": "array", "minItems": 1,
                                  "items": {"$ref": LOCAL_REF + "Layer"}}},
        "required": ["layers"], "additionalProperties": False}}


def definitions() -> dict[str, dict[str, Any]]:
    """Every named definition of the job spec schema."""
    return {**_sections(), **_registries(), **_model()}


def job_spec_schema(ref_template: str = LOCAL_REF + "{model}") -> dict[str, Any]:
    """The job spec as a JSON Schema 2020-12 document, its definitions under ``$defs``.

    ``ref_template`` places the references (``{model}`` is the definition's name), as
    pydantic's ``model_json_schema`` does; the definitions stay under ``$defs`` for the
    caller to move.
    """
    top = object_schema(JOB_PARAMS, title=ROOT, description=(
        "A training job: the model, its loss and optimizer, how to train and which "
        f"checkpoints to keep. `dataset` is an uploaded dataset id or {BUILTIN_PREFIX}<name>."))
    top["$defs"] = definitions()
    out: dict[str, Any] = retarget(top, ref_template)
    return out


def standalone_schema() -> dict[str, Any]:
    """:func:`job_spec_schema` with its ``$schema`` dialect, for a file or a validator."""
    return {"$schema": DIALECT, **job_spec_schema()}


def retarget(node: Any, ref_template: str) -> Any:
    """A copy of ``node`` with each local ``$ref`` rewritten by ``ref_template``."""
    if isinstance(node, Mapping):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(LOCAL_REF):
                out[key] = ref_template.format(model=value[len(LOCAL_REF):])
            elif str(key).startswith("x-"):
                continue  # words for docs/spec.md (Param.allowed), not schema
            else:
                out[key] = retarget(value, ref_template)
        return out
    if isinstance(node, list):
        return [retarget(item, ref_template) for item in node]
    return node


__all__ = ["DIALECT", "REGISTRIES", "ROOT", "Registry", "definition", "definitions",
           "entry_schema", "job_spec_schema", "one_of", "registry_defs", "retarget",
           "spec_params_of", "standalone_schema", "summary"]
