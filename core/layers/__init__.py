"""The layer registry: spec ``type`` -> Layer class (DESIGN §3)."""

from __future__ import annotations

from core.layers.activation import ActivationLayer
from core.layers.base import Layer
from core.layers.dense import Dense
from core.layers.dropout import Dropout
from core.layers.flatten import Flatten

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "flatten": Flatten,
    "dropout": Dropout,
    "activation": ActivationLayer,
}

__all__ = ["LAYERS", "ActivationLayer", "Dense", "Dropout", "Flatten", "Layer"]
