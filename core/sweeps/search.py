"""Grid and seeded random search: a trial's parameters as a pure function of (space, seed,
trial index).

Grid order: parameters in sorted path order, each walking its choices in the order given,
the last path varying fastest (as ``itertools.product`` and scikit-learn's ``ParameterGrid``);
a combination whose conditional parameters are inactive keeps only the active ones, and a
combination equal to an earlier one is skipped, so each trial is distinct.

Random: trial ``i`` draws one uniform per parameter (sorted path order) from
``numpy.random.default_rng([seed, i])`` and maps it through its distribution; inactive
parameters are dropped afterwards. A draw never depends on other trials, so any number of
concurrent trials gives the same parameters.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import numpy as np

from core.sweeps.space import Params, SearchSpace


def grid_points(space: SearchSpace, limit: int) -> list[Params]:
    """The first ``limit`` distinct combinations, in grid order (every one if fewer)."""
    return list(itertools.islice(_distinct(space), limit))


def _distinct(space: SearchSpace) -> Iterator[Params]:
    axes = [p.distribution.grid() or () for p in space.parameters]
    paths = [p.path for p in space.parameters]
    seen: set[str] = set()
    for combo in itertools.product(*axes):
        point = space.active(dict(zip(paths, combo, strict=True)))
        key = json.dumps(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            yield point


def random_point(space: SearchSpace, seed: int, index: int) -> Params:
    """Trial ``index``'s parameters for a random search seeded with ``seed``."""
    draws = np.random.default_rng([seed, index]).random(len(space.parameters))
    values = {p.path: p.distribution.from_unit(float(u))
              for p, u in zip(space.parameters, draws, strict=True)}
    return space.active(values)


def trial_seed(seed: int, index: int) -> int:
    """A 32-bit seed for trial ``index`` of a sweep seeded with ``seed`` (TPE's sampler)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
