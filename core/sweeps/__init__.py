"""Hyperparameter sweeps: the search space, its checks, grid and random search, ASHA's rule.

Pure functions of their inputs (NumPy and the standard library only): the worker's sweep
controller feeds them database rows and stores what they decide (docs/sweeps.md).
"""

from __future__ import annotations

from core.sweeps.asha import RungResult, continues, rungs
from core.sweeps.corners import check_corners, corners
from core.sweeps.distributions import DISTRIBUTIONS, Distribution
from core.sweeps.search import grid_points, random_point, trial_seed
from core.sweeps.space import Parameter, Params, SearchSpace, field_name
from core.sweeps.sweep_spec import SEARCH_METHODS, AshaSpec, SearchSpec, SweepSpec

__all__ = [
    "DISTRIBUTIONS", "SEARCH_METHODS", "AshaSpec", "Distribution", "Parameter", "Params",
    "RungResult", "SearchSpace", "SearchSpec", "SweepSpec", "check_corners", "continues",
    "corners", "field_name", "grid_points", "random_point", "rungs", "trial_seed",
]
