"""The layer registry: spec ``type`` -> Layer class (the spec side: core.spec.layers)."""

from __future__ import annotations

from core.layers.activation import ActivationLayer
from core.layers.base import Layer
from core.layers.batchnorm import BatchNorm
from core.layers.conv import Conv2D
from core.layers.dense import Dense
from core.layers.dropout import Dropout
from core.layers.flatten import Flatten
from core.layers.layernorm import LayerNorm
from core.layers.pooling import AvgPool2D, MaxPool2D

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "conv2d": Conv2D,
    "max_pool2d": MaxPool2D,
    "avg_pool2d": AvgPool2D,
    "flatten": Flatten,
    "dropout": Dropout,
    "batch_norm": BatchNorm,
    "layer_norm": LayerNorm,
    "activation": ActivationLayer,
}

__all__ = ["LAYERS", "ActivationLayer", "AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout",
           "Flatten", "Layer", "LayerNorm", "MaxPool2D"]
