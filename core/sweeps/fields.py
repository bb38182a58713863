"""What a spec path points at: its ``Param`` (kind, bounds, choices), read from the spec's
own declarations.

Optimizer and LR-schedule fields come from their registries' ``spec_params`` (for every type
the sweep can reach: the base's and any ``type`` choice in the space), so a field that only
``sgd`` declares is known when the space may pick ``sgd``. Other fields must exist in the base
spec with every default filled (``Spec.to_dict``); their kind and bounds come from their
section's declaration (``TRAINING_PARAMS`` and the other section constants, the layer's or
loss's registry entry) and, for a field no single kind covers (``batch_size``: an int or
"full"), from the base's value: an int is an integer field, a float a number, a bool a
boolean, a string a string; a field that is null by default may hold anything the spec
parser accepts, and an object or list only what a ``choice`` offers. Rules no declaration
states (a rule between fields, a dataset's shape) are still enforced: every corner of the
space goes through ``Spec.from_dict`` and the dry run (core.sweeps.corners).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.spec.optim import OPTIMIZER_ALIASES, optimizer_classes, schedule_classes, schedule_params
from core.spec.params import Param
from core.sweeps.paths import Step, lookup

#: a field that is null by default (``training.clip_grad_norm``): any distribution may fit
UNTYPED: dict[str, Any] = {"x-allowed": "whatever the spec accepts"}
#: a field holding an object or a list: only ``choice`` fits
STRUCTURED: dict[str, Any] = {"x-allowed": "an object or list"}


def field_param(steps: tuple[Step, ...], filled: Mapping[str, Any],
                type_choices: Mapping[tuple[Step, ...], Iterable[Any]]) -> Param | None:
    """The declaration of the field at ``steps``, or None if the spec has no such field.

    ``filled`` is the base spec's ``to_dict()``; ``type_choices`` the values the space may give
    a ``type`` path (``("optimizer", "type") -> ["sgd", "adam"]``).
    """
    name = str(steps[-1])
    if steps == ("optimizer", "type"):
        return Param("type", "choice", choices=(*optimizer_classes(), *OPTIMIZER_ALIASES))
    if steps == ("training", "lr_schedule", "type"):
        return Param("type", "choice", choices=tuple(schedule_classes()))
    if len(steps) == 2 and steps[0] == "optimizer":
        kinds = _reachable(filled, ("optimizer", "type"), type_choices)
        return _declared(name, (p for k in kinds if k in optimizer_classes()
                                for p in optimizer_classes()[k].spec_params))
    if len(steps) == 3 and steps[:2] == ("training", "lr_schedule"):
        kinds = _reachable(filled, ("training", "lr_schedule", "type"), type_choices)
        return _declared(name, (p for k in kinds if k in schedule_classes()
                                for p in schedule_params(k)))
    found, value = lookup(filled, steps)
    if not found:
        return None
    declared = _declared(name, _section_params(steps, filled))
    if declared is not None and declared.kind != "custom":
        return declared
    return inferred_param(name, value)  # int-or-"full" and the like: known by the base's value


def _section_params(steps: tuple[Step, ...], filled: Mapping[str, Any]) -> tuple[Param, ...]:
    """The declarations of the section holding ``steps``'s field: a spec section's module
    constant, or the registry entry of the layer or loss type the base spec has there."""
    from core.spec.layers import LAYER_SPECS
    from core.spec.training import (
        CHECKPOINT_PARAMS,
        EARLY_STOPPING_PARAMS,
        LOSS_SPECS,
        REGULARIZATION_PARAMS,
        TRAINING_PARAMS,
    )

    sections: dict[tuple[Step, ...], tuple[Param, ...]] = {
        ("training",): TRAINING_PARAMS, ("regularization",): REGULARIZATION_PARAMS,
        ("checkpoints",): CHECKPOINT_PARAMS, ("training", "early_stopping"): EARLY_STOPPING_PARAMS,
    }
    parent = steps[:-1]
    if parent in sections:
        return sections[parent]
    found, section = lookup(filled, parent)
    kind = section.get("type") if found and isinstance(section, Mapping) else None
    if len(parent) == 3 and parent[:2] == ("model", "layers") and kind in LAYER_SPECS:
        return LAYER_SPECS[kind].spec_params
    if parent == ("loss",) and kind in LOSS_SPECS:
        return LOSS_SPECS[kind].spec_params
    return ()


def inferred_param(name: str, value: Any) -> Param:
    """A field known only by its filled-in value in the base spec."""
    if isinstance(value, bool):
        return Param(name, "boolean")
    if isinstance(value, int):
        return Param(name, "integer")
    if isinstance(value, float):
        return Param(name, "number")
    if isinstance(value, str):
        return Param(name, "string")
    if value is None:
        return Param(name, "custom", None, schema=UNTYPED)
    return Param(name, "custom", schema=STRUCTURED)


def _reachable(filled: Mapping[str, Any], type_steps: tuple[Step, ...],
               type_choices: Mapping[tuple[Step, ...], Iterable[Any]]) -> list[str]:
    found, base_type = lookup(filled, type_steps)
    kinds = [base_type] if found and isinstance(base_type, str) else []
    for kind in type_choices.get(type_steps, ()):
        alias = OPTIMIZER_ALIASES.get(kind) if type_steps[0] == "optimizer" else None
        kinds.append("sgd" if alias is not None else kind)
    return [k for k in dict.fromkeys(kinds) if isinstance(k, str)]


def _declared(name: str, params: Iterable[Param]) -> Param | None:
    return next((p for p in params if p.name == name), None)
