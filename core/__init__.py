"""Weightsmith's NumPy core: specs, networks, training, checkpoints, datasets.

The public names are re-exported lazily (PEP 562): ``import core.errors`` stays cheap and
the submodules, which import each other, never meet a half-initialised package.

>>> from core import Spec, train, load_checkpoint   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.checkpoint import export_weights_npz, load_checkpoint, weight_stats
    from core.datasets import load_builtin, parse_dataset
    from core.dryrun import dry_run
    from core.errors import CheckpointError, DatasetError, DivergedError, SpecError
    from core.network import build_network
    from core.spec import Spec
    from core.training import EpochReport, TrainResult, train

_EXPORTS: dict[str, str] = {
    "Spec": "core.spec",
    "SpecError": "core.errors",
    "DatasetError": "core.errors",
    "DivergedError": "core.errors",
    "CheckpointError": "core.errors",
    "build_network": "core.network",
    "train": "core.training",
    "TrainResult": "core.training",
    "EpochReport": "core.training",
    "load_checkpoint": "core.checkpoint",
    "export_weights_npz": "core.checkpoint",
    "weight_stats": "core.checkpoint",
    "parse_dataset": "core.datasets",
    "load_builtin": "core.datasets",
    "dry_run": "core.dryrun",
}

__all__ = [
    "CheckpointError", "DatasetError", "DivergedError", "EpochReport", "Spec", "SpecError",
    "TrainResult", "build_network", "dry_run", "export_weights_npz", "load_builtin",
    "load_checkpoint", "parse_dataset", "train", "weight_stats",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
