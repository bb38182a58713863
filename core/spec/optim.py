"""``optimizer`` and ``training.lr_schedule``, read from the classes' own declarations.

Each optimizer in ``core.optimizers.OPTIMIZERS`` and each schedule in
``core.schedules.SCHEDULES`` declares its JSON fields once (``spec_params``: default, range,
doc); this module parses against those declarations and adds only what is the spec's own: the
classic optimizer aliases, the schedule's ``monitor`` and the rules between fields.

The classic textbook names are aliases of ``sgd``: each fixes some hyperparameters and may fix
the batch size. The parsed spec holds the resolved form (``type`` is always a key of
``OPTIMIZERS``), so ``to_dict`` shows exactly what will run.

The registries are imported when first needed, not at import time: they import
``core.spec.params``, which runs this package's ``__init__``, which imports this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import SpecError
from core.monitors import MONITORS, direction
from core.spec.fields import MISSING, Section, show, unknown_name_message
from core.spec.params import Param, check_values

if TYPE_CHECKING:
    from core.optimizers import Optimizer
    from core.schedules import Schedule

DEFAULT_OPTIMIZER = "adam"


def optimizer_classes() -> dict[str, type[Optimizer]]:
    """``core.optimizers.OPTIMIZERS`` (see the module docstring for why it is imported late)."""
    from core.optimizers import OPTIMIZERS

    return OPTIMIZERS


def schedule_classes() -> dict[str, type[Schedule]]:
    """``core.schedules.SCHEDULES``."""
    from core.schedules import SCHEDULES

    return SCHEDULES


def optimizer_params(kind: str) -> tuple[Param, ...]:
    """The fields of an ``optimizer`` of this type besides ``type``, in documentation order."""
    return optimizer_classes()[kind].spec_params


#: reduce_on_plateau's metric; its default (loss without a validation split) is the spec's
MONITOR = Param("monitor", "choice", "val_loss", choices=MONITORS,
                doc="The metric watched (default val_loss, or loss without a validation split).")


def schedule_params(kind: str) -> tuple[Param, ...]:
    """The fields of an ``lr_schedule`` of this type besides ``type``, in documentation order.

    The class's own ``spec_params``, ``monitor`` first if its step reads a metric, and
    ``warmup_epochs`` (every type) last.
    """
    from core.schedules import WARMUP_EPOCHS

    cls = schedule_classes()[kind]
    return ((MONITOR,) if cls.reads_metric else ()) + cls.spec_params + (WARMUP_EPOCHS,)


class _Fields(ABC):
    """``type`` plus the fields that type declares, every default filled, read-only.

    A field reads as an attribute (``spec.momentum``); a field that only another type
    declares reads as None, so code may ask any spec for any field.
    """

    path = ""
    type: str
    fields: tuple[tuple[str, Any], ...]

    @classmethod
    @abstractmethod
    def _params(cls, kind: str) -> tuple[Param, ...]:
        """The fields ``kind`` declares (its registry entry's, in documentation order)."""

    @classmethod
    @abstractmethod
    def _kinds(cls) -> list[str]:
        """Every type name this spec may hold."""

    def _fill(self, kind: str, values: dict[str, Any]) -> None:
        if kind not in self._kinds():
            raise SpecError(f"{self.path}.type", unknown_name_message(
                self.path.rpartition(".")[2], kind, self._kinds()))
        filled = check_values(self._params(kind), values, self.path)
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "fields", tuple(filled.items()))

    @property
    def values(self) -> dict[str, Any]:
        """The fields besides ``type`` (a copy)."""
        return dict(self.fields)

    def __getattr__(self, name: str) -> Any:
        for key, value in self.__dict__.get("fields", ()):
            if key == name:
                return value
        if not name.startswith("_") and any(
                p.name == name for kind in self._kinds() for p in self._params(kind)):
            return None
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dict(self.fields)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.fields)
        return f"{type(self).__name__}({self.type!r}, {args})"


@dataclass(frozen=True, init=False, repr=False)
class OptimizerSpec(_Fields):
    """``optimizer``: ``type`` plus every hyperparameter that optimizer declares.

    ``OptimizerSpec("sgd", learning_rate=0.1, momentum=0.9)``; an omitted or None field takes
    the class's default (torch.optim's). Default optimizer: adam.
    """

    path = "optimizer"
    type: str
    fields: tuple[tuple[str, Any], ...]

    def __init__(self, type: str = DEFAULT_OPTIMIZER, **values: Any) -> None:
        self._fill(type, values)

    @classmethod
    def _params(cls, kind: str) -> tuple[Param, ...]:
        return optimizer_params(kind)

    @classmethod
    def _kinds(cls) -> list[str]:
        return list(optimizer_classes())

    def state_arrays(self) -> int:
        """Parameter-sized arrays the optimizer keeps (the dry run's memory estimate)."""
        return optimizer_classes()[self.type].state_arrays(self.values)


@dataclass(frozen=True, init=False, repr=False)
class LrScheduleSpec(_Fields):
    """``training.lr_schedule``, stepped once per epoch with torch's semantics.

    ``LrScheduleSpec("cosine", t_max=9)``; fields as :func:`schedule_params` lists them. Only
    a schedule that reads a metric has ``monitor`` (and its ``mode`` follows the metric).
    """

    path = "training.lr_schedule"
    type: str
    fields: tuple[tuple[str, Any], ...]

    def __init__(self, type: str, **values: Any) -> None:
        self._fill(type, values)

    @classmethod
    def _params(cls, kind: str) -> tuple[Param, ...]:
        return schedule_params(kind)

    @classmethod
    def _kinds(cls) -> list[str]:
        return list(schedule_classes())


@dataclass(frozen=True)
class Alias:
    """A classic optimizer name: what it means in terms of ``sgd``."""

    meaning: str
    batch_size: int | str | None = None   # forced training.batch_size, if any
    sgd_defaults: tuple[tuple[str, Any], ...] = ()  # defaults that differ from plain sgd
    needs_momentum: bool = False
    fixed: tuple[str, ...] = ()  # of sgd_defaults: what the name means, not a default


_FULL = Alias("batch gradient descent", batch_size="full")
_STOCHASTIC = Alias("stochastic gradient descent", batch_size=1)
_MINI = Alias("mini-batch gradient descent")
_MOMENTUM = Alias("gradient descent with momentum", sgd_defaults=(("momentum", 0.9),),
                  needs_momentum=True)
OPTIMIZER_ALIASES: dict[str, Alias] = {
    "gd": _FULL, "bgd": _FULL, "batch_gd": _FULL, "batch_gradient_descent": _FULL,
    "stochastic_gd": _STOCHASTIC, "stochastic_gradient_descent": _STOCHASTIC,
    "minibatch_gd": _MINI, "mini_batch_gd": _MINI,
    "momentum": _MOMENTUM, "momentum_gd": _MOMENTUM,
    "nesterov": Alias("Nesterov accelerated gradient",
                      sgd_defaults=(("momentum", 0.9), ("nesterov", True)), needs_momentum=True,
                      fixed=("nesterov",)),
}
TORCH_SPELLINGS = {
    "lr": "unknown key; the learning rate is 'learning_rate' (torch's lr)",
    "betas": "unknown key; give torch's betas as 'beta1' and 'beta2'",
}


def parse_optimizer(value: Any, path: str, errors: list[SpecError],
                    ) -> tuple[OptimizerSpec, str | None]:
    """The optimizer and the alias it was written as (None for a plain name)."""
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return OptimizerSpec(), None
    classes = optimizer_classes()
    name = s.data.get("type", DEFAULT_OPTIMIZER)
    alias = OPTIMIZER_ALIASES.get(name) if isinstance(name, str) else None
    kind = "sgd" if alias is not None else name
    if not isinstance(kind, str) or kind not in classes:
        s.error("type", unknown_name_message("optimizer", name, [*classes, *OPTIMIZER_ALIASES]))
        s.check_keys(["type", *{p.name for cls in classes.values() for p in cls.spec_params}],
                     hints=TORCH_SPELLINGS)
        return OptimizerSpec(), None
    cls = classes[kind]
    s.check_keys(["type", *(p.name for p in cls.spec_params)], hints=_misplaced(kind))
    meant = dict(alias.sgd_defaults) if alias is not None else {}
    values = {p.name: p.read(s, meant.get(p.name, MISSING)) for p in cls.spec_params}
    for key, message in cls.conflicts(values).items():
        s.error(key, message)
    if alias is not None:
        _check_alias(values, s, name, alias)
    return OptimizerSpec(kind, **values), (name if alias is not None else None)


def _misplaced(kind: str) -> dict[str, str]:
    """A clearer message for a hyperparameter that belongs to another optimizer."""
    classes = optimizer_classes()
    own = sorted(p.name for p in classes[kind].spec_params)
    hints = dict(TORCH_SPELLINGS)
    for other, cls in classes.items():
        for p in cls.spec_params:
            if p.name not in own and p.name not in hints:
                hints[p.name] = (f"not a hyperparameter of {kind} (it belongs to {other}); "
                                 f"{kind} takes {own}")
    return hints


def _check_alias(values: dict[str, Any], s: Section, name: str, alias: Alias) -> None:
    if alias.needs_momentum and not values["momentum"] > 0.0:
        s.error("momentum", f"optimizer {name!r} ({alias.meaning}) needs momentum > 0, "
                f"got {values['momentum']!r}")
    meant = dict(alias.sgd_defaults)
    for key in alias.fixed:
        if values[key] != meant[key]:
            s.error(key, f"optimizer {name!r} ({alias.meaning}) means {key}: "
                    f"{show(meant[key])}; leave {key} out or pick another type, "
                    f"got {show(values[key])}")


def parse_schedule(value: Any, path: str, errors: list[SpecError], default_monitor: str,
                   ) -> LrScheduleSpec | None:
    """The schedule, or None if the section has errors (recorded in ``errors``).

    ``default_monitor`` is the monitor when none is given (loss without a validation split);
    ``mode`` defaults to that metric's direction.
    """
    s = Section.of(value, path, errors)
    if s is None:
        return None
    if "T_max" in s.data and "t_max" not in s.data:  # torch's spelling
        s = Section({("t_max" if k == "T_max" else k): v for k, v in s.data.items()},
                    path, errors)
    kind = s.data.get("type")
    classes = schedule_classes()
    if not isinstance(kind, str) or kind not in classes:
        s.error("type", "is required" if kind is None
                else unknown_name_message("lr_schedule", kind, classes))
        return None
    before = len(errors)
    params = schedule_params(kind)
    s.check_keys(["type", *(p.name for p in params)])
    values: dict[str, Any] = {}
    for p in params:
        default = MISSING
        if p.name == "monitor":
            default = default_monitor
        elif p.name == "mode" and "monitor" in values:
            default = direction(values["monitor"])
        values[p.name] = p.read(s, default)
    if len(errors) > before:
        return None
    return LrScheduleSpec(kind, **values)
