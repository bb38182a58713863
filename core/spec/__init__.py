"""The job spec as frozen dataclasses: ``Spec.from_dict(d)`` validates it all.

Sections live in submodules (layers, optim, training, job); this package re-exports them
lazily (PEP 562), as ``core`` does: the implementation registries (``core.activations``,
``core.initializers``, ...) import ``core.spec.params`` to declare their fields, and the spec
modules import those registries, so an eager package would meet itself half-initialised.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.spec.functions import ACTIVATION_PARAMS, INIT_PARAMS, ActivationFn, InitFn
    from core.spec.job import Spec, check_cross_fields, output_units
    from core.spec.layers import (
        LAYER_SPECS,
        ActivationSpec,
        AvgPool2DSpec,
        BatchNormSpec,
        Conv2DSpec,
        DenseSpec,
        DropoutSpec,
        FlattenSpec,
        LayerSpec,
        MaxPool2DSpec,
    )
    from core.spec.model import LAYER_TYPES, ModelSpec
    from core.spec.optim import (
        OPTIMIZER_ALIASES,
        LrScheduleSpec,
        OptimizerSpec,
        optimizer_params,
        schedule_params,
    )
    from core.spec.shapes import infer_shapes
    from core.spec.training import (
        LOSS_TYPES,
        CheckpointPolicy,
        EarlyStoppingSpec,
        LossSpec,
        RegularizationSpec,
        TrainingSpec,
    )

_MODULES: dict[str, tuple[str, ...]] = {
    "core.spec.functions": ("ACTIVATION_PARAMS", "INIT_PARAMS", "ActivationFn", "InitFn"),
    "core.spec.job": ("Spec", "check_cross_fields", "output_units"),
    "core.spec.layers": ("LAYER_SPECS", "ActivationSpec", "AvgPool2DSpec", "BatchNormSpec",
                         "Conv2DSpec", "DenseSpec", "DropoutSpec", "FlattenSpec",
                         "LayerSpec", "MaxPool2DSpec"),
    "core.spec.model": ("LAYER_TYPES", "ModelSpec"),
    "core.spec.optim": ("OPTIMIZER_ALIASES", "LrScheduleSpec", "OptimizerSpec",
                        "optimizer_params", "schedule_params"),
    "core.spec.shapes": ("infer_shapes",),
    "core.spec.training": ("LOSS_TYPES", "CheckpointPolicy", "EarlyStoppingSpec", "LossSpec",
                           "RegularizationSpec", "TrainingSpec"),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items()
                            for name in names}

__all__ = [
    "ACTIVATION_PARAMS", "INIT_PARAMS", "LAYER_SPECS", "LAYER_TYPES", "LOSS_TYPES",
    "OPTIMIZER_ALIASES", "ActivationFn", "ActivationSpec", "AvgPool2DSpec", "BatchNormSpec",
    "CheckpointPolicy", "Conv2DSpec", "DenseSpec", "DropoutSpec", "EarlyStoppingSpec",
    "FlattenSpec", "InitFn", "LayerSpec", "LossSpec", "LrScheduleSpec", "MaxPool2DSpec",
    "ModelSpec", "OptimizerSpec", "RegularizationSpec", "Spec", "TrainingSpec",
    "check_cross_fields", "infer_shapes", "optimizer_params", "output_units", "schedule_params",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
