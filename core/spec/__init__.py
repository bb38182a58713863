"""The job spec of DESIGN §3 as frozen dataclasses: ``Spec.from_dict(d)`` validates it all.

Sections live in submodules (layers, optim, training, job); this package re-exports them.
"""

from __future__ import annotations

from core.spec.functions import (
    ACTIVATION_PARAMS,
    INIT_PARAMS,
    ActivationFn,
    InitFn,
)
from core.spec.job import Spec, check_cross_fields, output_units
from core.spec.layers import (
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

__all__ = [
    "ACTIVATION_PARAMS", "INIT_PARAMS", "LAYER_TYPES", "LOSS_TYPES", "OPTIMIZER_ALIASES",
    "ActivationFn", "ActivationSpec", "AvgPool2DSpec",
    "BatchNormSpec", "CheckpointPolicy", "Conv2DSpec", "DenseSpec", "DropoutSpec",
    "EarlyStoppingSpec", "FlattenSpec", "InitFn", "LayerSpec", "LossSpec", "LrScheduleSpec",
    "MaxPool2DSpec", "ModelSpec", "OptimizerSpec", "RegularizationSpec", "Spec", "TrainingSpec",
    "check_cross_fields", "infer_shapes", "optimizer_params", "output_units", "schedule_params",
]
