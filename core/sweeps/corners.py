"""The corner check: the base spec with each corner of the space must be a valid, runnable job.

A corner is one parameter at one of its extremes (each bound of a range, each choice), with
the parameters its ``when`` names set so that it is active. Each corner's job spec goes
through ``Spec.from_dict`` and the caller's dry run (which knows the dataset's shape and the
service's limits); the first failure is reported at ``space["<path>"]`` with the corner and
the job spec's own error, so the user learns which value to change before any trial runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import SpecError
from core.spec import Spec
from core.spec.fields import show
from core.sweeps.space import Parameter, Params, SearchSpace, field_name

DryRun = Callable[[Spec], object]


def corners(space: SearchSpace) -> list[tuple[Parameter, Params]]:
    """(parameter, the values of one corner) for every corner, in space order."""
    by_path = {p.path: p for p in space.parameters}
    out: list[tuple[Parameter, Params]] = []
    for p in space.parameters:
        conditions = _conditions(p, by_path)
        for value in p.distribution.corners():
            out.append((p, {**conditions, p.path: value}))
    return out


def check_corners(space: SearchSpace, base: dict[str, Any], dry_run: DryRun) -> None:
    """Raise SpecErrors (one per failing parameter, its first failing corner) if any corner
    fails the spec parser or ``dry_run``."""
    errors: list[SpecError] = []
    failed: set[str] = set()
    for p, values in corners(space):
        if p.path in failed:
            continue
        try:
            dry_run(Spec.from_dict(space.apply(base, values)))
        except SpecError as err:
            failed.add(p.path)
            first = getattr(err, "errors", [err])[0]
            where = f"{first.field}: " if first.field else ""
            errors.append(SpecError(field_name(p.path), (
                f"the corner {_show_corner(values)} fails the job spec: {where}{first.message}")))
    if errors:
        raise errors[0] if len(errors) == 1 else SpecError.many(errors)


def _conditions(p: Parameter, by_path: dict[str, Parameter]) -> Params:
    """The values that make ``p`` active: its ``when``, and theirs, transitively."""
    out: Params = {}
    for target, value in p.when:
        out.update(_conditions(by_path[target], by_path))
        out[target] = value
    return out


def _show_corner(values: Params) -> str:
    return "{" + ", ".join(f"{path}={show(v)}" for path, v in values.items()) + "}"
