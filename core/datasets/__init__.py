"""Datasets: parsing uploads (CSV, NPZ, JSON) from bytes, builtins, and checks against a spec."""

from __future__ import annotations

from core.datasets.builtin import BUILTINS, load_builtin
from core.datasets.dataset import Dataset, DatasetLimits
from core.datasets.formats import parse_dataset
from core.datasets.validate import validate_for_spec

__all__ = ["BUILTINS", "Dataset", "DatasetLimits", "load_builtin", "parse_dataset",
           "validate_for_spec"]
