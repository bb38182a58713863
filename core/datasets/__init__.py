"""Datasets: parsing uploads (CSV, NPZ, JSON) from bytes, builtins, and checks against a spec."""

from __future__ import annotations

from core.datasets.builtin import BUILTINS, load_builtin
from core.datasets.dataset import Dataset, DatasetLimits
from core.datasets.formats import FORMATS, DatasetFormat, format_for, parse_dataset, suffixes
from core.datasets.validate import validate_for_spec

__all__ = ["BUILTINS", "FORMATS", "Dataset", "DatasetFormat", "DatasetLimits", "format_for",
           "load_builtin", "parse_dataset", "suffixes", "validate_for_spec"]
