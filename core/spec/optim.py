"""``optimizer`` and ``training.lr_schedule``: names, hyperparameters, torch's defaults.

The classic textbook names are aliases of ``sgd``: each fixes some hyperparameters and may
fix the batch size. The parsed spec holds the resolved form (``type`` is always one of
OPTIMIZER_PARAMS), so ``to_dict`` shows exactly what will run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from core.errors import SpecError
from core.spec.fields import MISSING, Section, unknown_name_message

# name -> {hyperparameter: torch's default}; learning_rate is torch's ``lr``.
OPTIMIZER_PARAMS: dict[str, dict[str, Any]] = {
    "sgd": {"learning_rate": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
            "weight_decay": 0.0},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
             "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
              "weight_decay": 1e-2, "amsgrad": False},
    "rmsprop": {"learning_rate": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0,
                "momentum": 0.0, "centered": False},
    "adagrad": {"learning_rate": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10},
}


@dataclass(frozen=True)
class Alias:
    """A classic optimizer name: what it means in terms of ``sgd``."""

    meaning: str
    batch_size: int | str | None = None   # forced training.batch_size, if any
    sgd_defaults: tuple[tuple[str, Any], ...] = ()  # defaults that differ from plain sgd
    needs_momentum: bool = False


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
                      sgd_defaults=(("momentum", 0.9), ("nesterov", True)), needs_momentum=True),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """``optimizer``: ``type`` plus that optimizer's hyperparameters (others stay None).

    Defaults are torch.optim's: lr 1e-3 for sgd/adam/adamw and 1e-2 for rmsprop/adagrad,
    adamw weight_decay 0.01, adagrad eps 1e-10. Default optimizer: adam.
    """

    type: str = "adam"
    learning_rate: float | None = None
    momentum: float | None = None
    dampening: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    amsgrad: bool | None = None
    alpha: float | None = None
    centered: bool | None = None
    lr_decay: float | None = None
    initial_accumulator_value: float | None = None

    def __post_init__(self) -> None:
        for key, default in OPTIMIZER_PARAMS.get(self.type, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type,
                **{k: getattr(self, k) for k in OPTIMIZER_PARAMS.get(self.type, {})}}


def parse_optimizer(value: Any, path: str, errors: list[SpecError],
                    ) -> tuple[OptimizerSpec, str | None]:
    """The optimizer and the alias it was written as (None for a plain name)."""
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return OptimizerSpec(), None
    name = s.data.get("type", "adam")
    alias = OPTIMIZER_ALIASES.get(name) if isinstance(name, str) else None
    kind = "sgd" if alias is not None else name
    if not isinstance(kind, str) or kind not in OPTIMIZER_PARAMS:
        s.error("type", unknown_name_message(
            "optimizer", name, [*OPTIMIZER_PARAMS, *OPTIMIZER_ALIASES]))
        s.check_keys(["type", *{k for p in OPTIMIZER_PARAMS.values() for k in p}])
        return OptimizerSpec(), None
    defaults = {**OPTIMIZER_PARAMS[kind], **dict(alias.sgd_defaults if alias else ())}
    s.check_keys(["type", *defaults], hints=_misplaced(kind))
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        if isinstance(default, bool):
            values[key] = s.boolean(key, default)
        elif key in ("beta1", "beta2"):
            values[key] = s.number(key, default, low=0.0, high=1.0, high_open=True)
        elif key == "learning_rate":
            values[key] = s.number(key, default, low=0.0, low_open=True)
        elif key == "dampening":
            values[key] = s.number(key, default, low=0.0, high=1.0)
        else:
            values[key] = s.number(key, default, low=0.0)
    spec = OptimizerSpec(kind, **values)
    _check_torch_rules(spec, s, name, alias)
    return spec, (name if alias is not None else None)


def _misplaced(kind: str) -> dict[str, str]:
    """A clearer message for a hyperparameter that belongs to another optimizer."""
    hints: dict[str, str] = {
        "lr": "unknown key; the learning rate is 'learning_rate' (torch's lr)",
        "betas": "unknown key; give torch's betas as 'beta1' and 'beta2'",
    }
    for other, params in OPTIMIZER_PARAMS.items():
        for key in params:
            if key not in OPTIMIZER_PARAMS[kind] and key not in hints:
                hints[key] = f"not a hyperparameter of {kind} (it belongs to {other}); " \
                             f"{kind} takes {sorted(OPTIMIZER_PARAMS[kind])}"
    return hints


def _check_torch_rules(spec: OptimizerSpec, s: Section, name: Any, alias: Alias | None) -> None:
    if alias is not None and alias.needs_momentum and not (spec.momentum or 0.0) > 0.0:
        s.error("momentum", f"optimizer {name!r} ({alias.meaning}) needs momentum > 0, "
                f"got {spec.momentum!r}")
    if name == "nesterov" and spec.nesterov is False:
        s.error("nesterov", "optimizer 'nesterov' means nesterov: true; use 'momentum' for "
                "classic momentum")
    if spec.type == "sgd" and spec.nesterov and ((spec.momentum or 0.0) <= 0.0
                                                 or spec.dampening != 0.0):
        s.error("nesterov", "Nesterov momentum requires momentum > 0 and dampening 0 "
                f"(as torch), got momentum {spec.momentum!r}, dampening {spec.dampening!r}")


SCHEDULE_PARAMS: dict[str, dict[str, Any]] = {
    "constant": {},  # useful with warmup_epochs alone
    "step": {"step_size": MISSING, "gamma": 0.1},
    "exponential": {"gamma": MISSING},
    "cosine": {"t_max": None, "eta_min": 0.0},
    "reduce_on_plateau": {"monitor": None, "mode": None, "factor": 0.1, "patience": 10,
                          "threshold": 1e-4, "threshold_mode": "rel", "cooldown": 0,
                          "min_lr": 0.0, "eps": 1e-8},
}


@dataclass(frozen=True)
class LrScheduleSpec:
    """``training.lr_schedule``, stepped once per epoch with torch's semantics.

    ``t_max`` (cosine; ``T_max`` is accepted on input) None means epochs - warmup_epochs.
    reduce_on_plateau watches ``monitor`` (default val_loss, or loss without a validation
    split) in ``mode`` (default: max for accuracies, else min). ``warmup_epochs`` ramps the
    rate linearly first (torch LinearLR + SequentialLR). Fields of other types stay None.
    """

    type: str
    warmup_epochs: int = 0
    step_size: int | None = None
    gamma: float | None = None
    t_max: int | None = None
    eta_min: float | None = None
    monitor: str | None = None
    mode: str | None = None
    factor: float | None = None
    patience: int | None = None
    threshold: float | None = None
    threshold_mode: str | None = None
    cooldown: int | None = None
    min_lr: float | None = None
    eps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        keys = SCHEDULE_PARAMS.get(self.type, {})
        return {"type": self.type, **{k: getattr(self, k) for k in keys},
                "warmup_epochs": self.warmup_epochs}


SCHEDULE_FIELDS = frozenset(f.name for f in fields(LrScheduleSpec))


def parse_schedule(value: Any, path: str, errors: list[SpecError], default_monitor: str,
                   ) -> LrScheduleSpec | None:
    s = Section.of(value, path, errors)
    if s is None:
        return None
    if "T_max" in s.data and "t_max" not in s.data:
        s = Section({("t_max" if k == "T_max" else k): v for k, v in s.data.items()},
                    path, errors)
    kind = s.data.get("type")
    if not isinstance(kind, str) or kind not in SCHEDULE_PARAMS:
        s.error("type", "is required" if kind is None
                else unknown_name_message("lr_schedule", kind, SCHEDULE_PARAMS))
        return None
    keys = SCHEDULE_PARAMS[kind]
    s.check_keys(["type", "warmup_epochs", *keys])
    v: dict[str, Any] = {"warmup_epochs": s.integer("warmup_epochs", 0, minimum=0)}
    if kind == "step":
        v["step_size"] = s.integer("step_size", MISSING, minimum=1)
        v["gamma"] = s.number("gamma", 0.1, low=0.0, low_open=True)
    elif kind == "exponential":
        v["gamma"] = s.number("gamma", MISSING, low=0.0, low_open=True)
    elif kind == "cosine":
        v["t_max"] = s.integer("t_max", None, minimum=1)
        v["eta_min"] = s.number("eta_min", 0.0, low=0.0)
    elif kind == "reduce_on_plateau":
        monitor = s.choice("monitor", default_monitor, MONITORS)
        v["monitor"] = monitor
        v["mode"] = s.choice("mode", default_mode(monitor), ("min", "max"))
        v["factor"] = s.number("factor", 0.1, low=0.0, high=1.0, low_open=True, high_open=True)
        v["patience"] = s.integer("patience", 10, minimum=0)
        v["threshold"] = s.number("threshold", 1e-4, low=0.0)
        v["threshold_mode"] = s.choice("threshold_mode", "rel", ("rel", "abs"))
        v["cooldown"] = s.integer("cooldown", 0, minimum=0)
        v["min_lr"] = s.number("min_lr", 0.0, low=0.0)
        v["eps"] = s.number("eps", 1e-8, low=0.0)
    return LrScheduleSpec(kind, **v)


MONITORS = ("loss", "val_loss", "accuracy", "val_accuracy")


def default_mode(monitor: str | None) -> str:
    """Accuracies improve upwards, losses downwards (Keras's ``mode="auto"``)."""
    return "max" if monitor is not None and "accuracy" in monitor else "min"
