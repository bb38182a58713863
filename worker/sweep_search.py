"""TPE search: Optuna's ``TPESampler`` asked for one trial, its history rebuilt from our rows.

Nothing of Optuna outlives the call: each ``tpe_point`` makes an in-memory study, adds every
finished trial the database holds (in trial order: completed with their final metric, pruned
with their rung values, failed as failures), and asks once. The sampler is seeded with
``(seed, index)``, so the point is a pure function of (space, seed, index, history), and the
database stays the only truth. Choices are offered to Optuna as indices (its categorical
values must be scalars; ours may be objects); the index maps back to the choice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from core.sweeps import Parameter, Params, SearchSpace, trial_seed

OPTUNA_DISTRIBUTIONS: dict[str, type[BaseDistribution]] = {
    "float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution,
}
SUGGEST: dict[str, Callable[[optuna.Trial, str, dict[str, Any]], Any]] = {
    "float": lambda t, name, a: t.suggest_float(name, a["low"], a["high"], log=a["log"]),
    "int": lambda t, name, a: t.suggest_int(name, a["low"], a["high"]),
    "categorical": lambda t, name, a: t.suggest_categorical(
        name, tuple(range(len(a["choices"])))),
}
STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
          "failed": TrialState.FAIL}


@dataclass(frozen=True)
class Observation:
    """A finished trial as TPE sees it: its parameters, state, final value and rung values."""

    params: Params
    state: str  # a key of STATES
    value: float | None = None
    intermediate: Mapping[int, float] = field(default_factory=dict)


def optuna_distribution(p: Parameter) -> BaseDistribution:
    kind, args = p.distribution.sampler_range()
    if kind == "categorical":
        return CategoricalDistribution(tuple(range(len(args["choices"]))))
    return OPTUNA_DISTRIBUTIONS[kind](**args)


def _encode(p: Parameter, value: Any) -> Any:
    grid = p.distribution.grid()
    if grid is None:
        return value
    keys = [json.dumps(v, sort_keys=True) for v in grid]
    return keys.index(json.dumps(value, sort_keys=True))


def _decode(p: Parameter, value: Any) -> Any:
    grid = p.distribution.grid()
    return value if grid is None else grid[int(value)]


def suggestion_order(space: SearchSpace) -> list[Parameter]:
    """The parameters with each ``when`` target before the parameters it conditions."""
    by_path = {p.path: p for p in space.parameters}
    done: dict[str, Parameter] = {}

    def visit(p: Parameter) -> None:
        for target, _ in p.when:
            if target not in done:
                visit(by_path[target])
        done.setdefault(p.path, p)

    for p in space.parameters:
        visit(p)
    return list(done.values())


def tpe_point(space: SearchSpace, seed: int, index: int, mode: str,
              history: Sequence[Observation]) -> Params:
    """Trial ``index``'s parameters, given the finished trials before it."""
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=trial_seed(seed, index))
    study = optuna.create_study(sampler=sampler,
                                direction="maximize" if mode == "max" else "minimize")
    params = space.parameters
    for obs in history:
        active = [p for p in params if p.path in obs.params]
        study.add_trial(create_trial(
            state=STATES[obs.state],
            value=obs.value if obs.state == "complete" else None,
            params={p.path: _encode(p, obs.params[p.path]) for p in active},
            distributions={p.path: optuna_distribution(p) for p in active},
            intermediate_values=dict(obs.intermediate)))
    trial = study.ask()
    chosen: dict[str, Any] = {}
    for p in suggestion_order(space):
        if all(t in chosen and chosen[t] == v for t, v in p.when):
            kind, args = p.distribution.sampler_range()
            chosen[p.path] = _decode(p, SUGGEST[kind](trial, p.path, args))
    return {p.path: chosen[p.path] for p in params if p.path in chosen}
