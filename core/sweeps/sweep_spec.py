"""The body of ``POST /v1/sweeps``: a base job spec, a search space, a search method, an
optional ASHA scheduler, retries and a time budget, parsed and checked in one place.

The sweep limits (most trials, most concurrent trials) are the caller's settings, passed in:
the core reads no configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import SpecError
from core.monitors import MONITORS, direction
from core.spec import Spec
from core.spec.fields import MISSING, Section
from core.sweeps.space import SearchSpace, field_name

SWEEP_KEYS = ("name", "base", "space", "search", "scheduler", "max_retries", "time_budget_s")
#: search methods; each is implemented by core.sweeps.search (grid, random) or the worker (tpe)
SEARCH_METHODS = ("grid", "random", "tpe")
SCHEDULERS = ("asha",)


@dataclass(frozen=True)
class SearchSpec:
    """How trials' parameters are chosen."""

    method: str
    seed: int
    max_trials: int
    max_concurrent: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "max_trials": self.max_trials,
                "max_concurrent": self.max_concurrent}


@dataclass(frozen=True)
class AshaSpec:
    """ASHA's settings (core.sweeps.asha applies them)."""

    metric: str
    mode: str
    grace_epochs: int
    reduction_factor: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": "asha", "metric": self.metric, "mode": self.mode,
                "grace_epochs": self.grace_epochs, "reduction_factor": self.reduction_factor}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep; ``base`` is the job spec as the user wrote it (trials start from it)."""

    name: str | None
    base: dict[str, Any]
    base_spec: Spec
    space: SearchSpace
    search: SearchSpec
    scheduler: AshaSpec | None
    max_retries: int
    time_budget_s: float | None

    @classmethod
    def from_dict(cls, data: Any, *, max_trials: int, max_concurrent: int) -> SweepSpec:
        """Parse and check a sweep body; SpecError / SpecErrors name each bad field.

        ``max_trials`` / ``max_concurrent`` are the service's limits. The space is checked
        against the base spec, which must itself be a valid job spec (errors at ``base.<field>``).
        """
        errors: list[SpecError] = []
        s = Section.of(data, "", errors)
        if s is None:
            raise errors[0]
        s.check_keys(SWEEP_KEYS)
        name = s.string("name", None, max_length=200)
        base_raw = s.data.get("base")
        base_spec = _base(base_raw, errors)
        space = None
        if base_spec is not None:
            try:
                space = SearchSpace.from_dict(s.data.get("space"), base_spec.to_dict())
            except SpecError as err:
                errors.append(err)
        search = _search(s.data.get("search"), space, errors, max_trials, max_concurrent)
        scheduler = _scheduler(s.data.get("scheduler"), base_spec, errors)
        max_retries = s.integer("max_retries", 0, minimum=0, maximum=10)
        budget = s.number("time_budget_s", None, low=0.0, low_open=True)
        if errors:
            raise errors[0] if len(errors) == 1 else SpecError.many(errors)
        assert base_spec is not None and space is not None and search is not None
        return cls(name=name, base=dict(s.data["base"]), base_spec=base_spec, space=space,
                   search=search, scheduler=scheduler, max_retries=max_retries,
                   time_budget_s=budget)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> SweepSpec:
        """A body stored by ``to_dict`` (checked when submitted, under the limits then)."""
        search = data["search"]
        return cls.from_dict(data, max_trials=int(search["max_trials"]),
                             max_concurrent=int(search["max_concurrent"]))

    def to_dict(self) -> dict[str, Any]:
        """The body as stored: every default filled, the base as written."""
        return {"name": self.name, "base": self.base, "space": self.space.to_dict(),
                "search": self.search.to_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.to_dict(),
                "max_retries": self.max_retries, "time_budget_s": self.time_budget_s}

    @property
    def objective(self) -> tuple[str, str]:
        """(metric, mode) that ranks trials: the scheduler's, else the base's checkpoint
        monitor (whose "best" checkpoint it already picks)."""
        if self.scheduler is not None:
            return self.scheduler.metric, self.scheduler.mode
        monitor = self.base_spec.checkpoints.monitor
        return monitor, direction(monitor)

    @property
    def epochs(self) -> int:
        """The base spec's epochs: ASHA's largest resource and each trial's budget."""
        return self.base_spec.training.epochs


def _base(raw: Any, errors: list[SpecError]) -> Spec | None:
    if raw is None:
        errors.append(SpecError("base", "is required: a complete job spec"))
        return None
    try:
        return Spec.from_dict(raw)
    except SpecError as err:
        for e in getattr(err, "errors", [err]):
            errors.append(SpecError(f"base.{e.field}" if e.field else "base", e.message))
        return None


def _search(raw: Any, space: SearchSpace | None, errors: list[SpecError], max_trials: int,
            max_concurrent: int) -> SearchSpec | None:
    s = Section.of(raw, "search", errors)
    if s is None:
        return None
    s.check_keys(("method", "seed", "max_trials", "max_concurrent"))
    method = s.choice("method", MISSING, SEARCH_METHODS)
    seed = s.integer("seed", 0, minimum=0, maximum=2**32 - 1)
    # a grid's default is all of its combinations (up to the limit)
    trials = s.integer("max_trials", max_trials if method == "grid" else MISSING,
                       minimum=1, maximum=max_trials)
    concurrent = s.integer("max_concurrent", 1, minimum=1, maximum=max_concurrent)
    if method == "grid" and space is not None:
        for p in space.parameters:
            if p.distribution.grid() is None:
                errors.append(SpecError(field_name(p.path), (
                    f"grid search walks only choice parameters; give a choice list, "
                    f"not {p.distribution.key}")))
    if None in (method, trials):
        return None
    return SearchSpec(method, seed, trials, concurrent)


def _scheduler(raw: Any, base: Spec | None, errors: list[SpecError]) -> AshaSpec | None:
    if raw is None:
        return None
    s = Section.of(raw, "scheduler", errors)
    if s is None:
        return None
    s.check_keys(("type", "metric", "mode", "grace_epochs", "reduction_factor"))
    s.choice("type", MISSING, SCHEDULERS)
    metric = s.choice("metric", MISSING, MONITORS)
    mode = s.choice("mode", direction(metric) if metric is not None else "min", ("min", "max"))
    grace = s.integer("grace_epochs", 1, minimum=1)
    factor = s.integer("reduction_factor", 3, minimum=2)
    if base is not None and metric is not None:
        if metric.startswith("val_") and base.training.validation_split == 0:
            s.error("metric", f"{metric!r} needs the base's training.validation_split > 0")
        if "accuracy" in metric and base.task != "classification":
            s.error("metric", f"{metric!r} exists only for classification losses")
        if grace is not None and grace >= base.training.epochs:
            s.error("grace_epochs", f"must be less than the base's training.epochs "
                    f"({base.training.epochs}), got {grace}: ASHA would never decide")
    if None in (metric, grace, factor):
        return None
    return AshaSpec(metric, mode, grace, factor)

