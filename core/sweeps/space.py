"""A sweep's search space: parameters at spec paths, their distributions and ``when`` rules.

``{"optimizer.momentum": {"uniform": [0.0, 0.99], "when": {"optimizer.type": "sgd"}}}``: a
path into the job spec, exactly one distribution (core.sweeps.distributions) and, optionally,
``when``: other parameters of the space and the value each must take for this one to be
sampled and set (otherwise the base spec's value stands). Parameters are kept in sorted path
order, which every search method follows, so the order a client or a JSONB column gives the
keys in changes nothing. Every error names ``space["<path>"]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import SpecError
from core.spec.fields import show
from core.sweeps.distributions import DISTRIBUTIONS, Choice, Distribution
from core.sweeps.fields import field_param
from core.sweeps.paths import Step, assign, parse_path

Params = dict[str, Any]
#: parameters one space may hold (with MAX_CHOICES, a bound on the corners a submission checks)
MAX_PARAMETERS = 64


def field_name(path: str) -> str:
    """How errors name a parameter: ``space["optimizer.learning_rate"]``."""
    return f"space[{json.dumps(path)}]"


@dataclass(frozen=True)
class Parameter:
    """One swept field."""

    path: str
    steps: tuple[Step, ...]
    distribution: Distribution
    when: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = self.distribution.to_dict()
        if self.when:
            out["when"] = dict(self.when)
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The parameters, in sorted path order."""

    parameters: tuple[Parameter, ...]

    @classmethod
    def from_dict(cls, raw: Any, filled_base: Mapping[str, Any]) -> SearchSpace:
        """Parse and check ``raw`` against the base spec (``Spec.to_dict()`` of it).

        Raises SpecError / SpecErrors, each at ``space["<path>"]`` (or ``space``).
        """
        if not isinstance(raw, Mapping) or not raw:
            raise SpecError("space", f"must be a non-empty JSON object of parameters, "
                            f"got {show(raw)}")
        if len(raw) > MAX_PARAMETERS:
            raise SpecError("space", f"has {len(raw)} parameters; at most {MAX_PARAMETERS}")
        errors: list[SpecError] = []
        parsed: dict[str, Parameter] = {}
        for path in sorted(raw):
            try:
                parsed[path] = _parse_parameter(str(path), raw[path])
            except SpecError as err:
                errors.append(err)
        type_choices = {p.steps: p.distribution.corners() for p in parsed.values()
                        if p.steps[-1] == "type" and isinstance(p.distribution, Choice)}
        for p in parsed.values():
            param = field_param(p.steps, filled_base, type_choices)
            if param is None:
                errors.append(SpecError(field_name(p.path), "no such field in the job spec"))
                continue
            reason = p.distribution.misfit(param)
            if reason is not None:
                errors.append(SpecError(field_name(p.path), reason))
        errors.extend(_check_when(parsed))
        if errors:
            raise errors[0] if len(errors) == 1 else SpecError.many(errors)
        return cls(tuple(parsed.values()))

    def to_dict(self) -> dict[str, Any]:
        return {p.path: p.to_dict() for p in self.parameters}

    def active(self, values: Mapping[str, Any]) -> Params:
        """``values`` (one per parameter) without those whose ``when`` does not hold.

        A parameter is active when every parameter its ``when`` names is active and has the
        value given there; the result keeps the space's order.
        """
        by_path = {p.path: p for p in self.parameters}
        memo: dict[str, bool] = {}

        def on(path: str) -> bool:
            if path not in memo:
                memo[path] = all(on(t) and values[t] == v for t, v in by_path[path].when)
            return memo[path]

        return {p.path: values[p.path] for p in self.parameters if on(p.path)}

    def apply(self, base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        """The job spec of a trial: ``base`` (as the user wrote it) with ``params`` set."""
        steps = {p.path: p.steps for p in self.parameters}
        return assign(base, {steps[path]: value for path, value in params.items()})


def _parse_parameter(path: str, raw: Any) -> Parameter:
    field = field_name(path)
    steps = parse_path(path, field)
    if not isinstance(raw, Mapping):
        raise SpecError(field, f"must be an object with one of {sorted(DISTRIBUTIONS)}, "
                        f"got {show(raw)}")
    keys = [k for k in raw if k in DISTRIBUTIONS]
    extra = [k for k in raw if k not in DISTRIBUTIONS and k != "when"]
    if extra:
        raise SpecError(field, f"unknown key {extra[0]!r}; expected one of "
                        f"{sorted(DISTRIBUTIONS)} and optionally 'when'")
    if len(keys) != 1:
        raise SpecError(field, f"must give exactly one distribution of {sorted(DISTRIBUTIONS)}, "
                        f"got {keys or 'none'}")
    distribution = DISTRIBUTIONS[keys[0]].parse(raw[keys[0]], field)
    when = raw.get("when")
    if when is not None and (not isinstance(when, Mapping) or not when):
        raise SpecError(field, f"when must be a non-empty object of parameter paths and "
                        f"values, got {show(when)}")
    return Parameter(path, steps, distribution, tuple(sorted((when or {}).items())))


def _check_when(parsed: Mapping[str, Parameter]) -> list[SpecError]:
    errors: list[SpecError] = []
    for p in parsed.values():
        for target, value in p.when:
            if target not in parsed:
                errors.append(SpecError(field_name(p.path), (
                    f"when names {target!r}, which is not a parameter of the space")))
            elif value not in (parsed[target].distribution.grid() or (value,)):
                errors.append(SpecError(field_name(p.path), (
                    f"when {target!r} is {show(value)} can never hold: {target!r} is one of "
                    f"{show(list(parsed[target].distribution.grid() or ()))}")))
    if not errors:
        errors.extend(_cycles(parsed))
    return errors


def _cycles(parsed: Mapping[str, Parameter]) -> list[SpecError]:
    state: dict[str, int] = {}  # 1: on the current walk, 2: done

    def walk(path: str) -> str | None:
        state[path] = 1
        for target, _ in parsed[path].when:
            if state.get(target) == 1:
                return target
            if state.get(target) is None and (found := walk(target)) is not None:
                return found
        state[path] = 2
        return None

    for path in parsed:
        if state.get(path) is None and (target := walk(path)) is not None:
            return [SpecError(field_name(path), f"when rules form a cycle through {target!r}")]
    return []
