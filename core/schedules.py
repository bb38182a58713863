"""Per-epoch learning-rate schedules with ``torch.optim.lr_scheduler`` semantics.

A schedule is built after its optimizer and writes ``optimizer.lr``; the trainer calls
:meth:`Schedule.step` once after each epoch (``ReduceLROnPlateau`` with the monitored metric).
The recurrences are PyTorch's own ``get_lr()`` chains, operation for operation (the cosine
chain and its closed form differ in the last bits; torch steps with the chain), so the learning
rates equal PyTorch's bit for bit.

Warmup (``warmup_epochs = w``) is ``LinearLR(start_factor=1/(w+1), total_iters=w)`` chained
with the main schedule by ``SequentialLR(milestones=[w])``: epochs 1..w train at
``k/(w+1) * lr`` and epoch w+1 starts the main schedule at the full ``lr``. Cosine's ``t_max``
defaults to the epochs left after warmup. PyTorch refuses ``ReduceLROnPlateau`` inside
``SequentialLR``; here it starts afresh at the milestone and sees metrics from epoch w+1 on.

Each schedule declares its fields once (``spec_params``: torch's default, range, doc); the
constructor checks them and ``core.spec`` parses ``training.lr_schedule`` from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from core.errors import SpecError
from core.spec.params import Param, check_values

ScheduleState = dict[str, float | int | str]
FIELD = "training.lr_schedule"

#: every schedule type takes it; 0 means no warmup
WARMUP_EPOCHS = Param("warmup_epochs", "integer", 0, low=0,
                      doc="Epochs of linear warmup before the schedule starts (0: none).")


class HasLr(Protocol):
    """What a schedule needs of an optimizer: a settable ``lr``."""

    lr: float


class Schedule:
    """A constant learning rate; the base of every schedule.

    Parameters
    ----------
    optimizer : object with a settable ``lr``; its value at construction is ``base_lr``
    **hyper : the class's ``spec_params`` by JSON name; None or absent keeps the default.
        A bad value raises the SpecError the spec parser gives (``training.lr_schedule.<name>``).
    """

    name: ClassVar[str] = "constant"
    #: the JSON fields of ``training.lr_schedule`` besides ``type`` and ``warmup_epochs``
    spec_params: ClassVar[tuple[Param, ...]] = ()
    #: True: :meth:`step` needs the monitored metric (the spec then takes ``monitor``)
    reads_metric: ClassVar[bool] = False

    def __init__(self, optimizer: HasLr, **hyper: Any) -> None:
        for key, value in check_values(self.spec_params, hyper, FIELD).items():
            setattr(self, key, value)
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0

    @property
    def lr(self) -> float:
        """The learning rate the next epoch trains with."""
        return self.optimizer.lr

    def step(self, metric: float | None = None) -> None:
        """Advance one epoch; ``metric`` is used only by ``reduce_on_plateau``."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.optimizer.lr)

    def restart(self) -> None:
        """Start over at epoch 0 from ``base_lr`` (torch ``SequentialLR`` at a milestone)."""
        self.last_epoch = 0
        self.optimizer.lr = self._closed_form_lr()

    @classmethod
    def run_defaults(cls, epochs: int) -> dict[str, Any]:
        """Defaults that depend on the run: ``epochs`` is what the schedule will step through."""
        return {}

    def _next_lr(self, lr: float) -> float:
        return lr

    def _closed_form_lr(self) -> float:
        return self.base_lr

    def state_dict(self) -> ScheduleState:
        """Flat state of Python scalars (``"lr"`` is the optimizer's current rate)."""
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr, "lr": self.optimizer.lr}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output and put its ``lr`` back into the optimizer."""
        self.last_epoch = int(state["last_epoch"])
        self.base_lr = float(state["base_lr"])
        self.optimizer.lr = float(state["lr"])


class StepLR(Schedule):
    """``lr *= gamma`` every ``step_size`` epochs (torch ``StepLR``)."""

    name: ClassVar[str] = "step"
    spec_params: ClassVar[tuple[Param, ...]] = (
        Param("step_size", "integer", low=1, doc="Epochs between two decays.", example=10),
        Param("gamma", "number", 0.1, low=0.0, low_open=True,
              doc="Factor applied to the rate every step_size epochs."),
    )
    step_size: int
    gamma: float

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr

    def _closed_form_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(Schedule):
    """``lr *= gamma`` every epoch (torch ``ExponentialLR``)."""

    name: ClassVar[str] = "exponential"
    spec_params: ClassVar[tuple[Param, ...]] = (
        Param("gamma", "number", low=0.0, low_open=True,
              doc="Factor applied to the rate after every epoch.", example=0.95),
    )
    gamma: float

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma

    def _closed_form_lr(self) -> float:
        return self.base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(Schedule):
    """Cosine from ``base_lr`` down to ``eta_min`` over ``t_max`` epochs, then back up.

    Steps with torch ``CosineAnnealingLR.get_lr``'s recurrence (including its special case at
    ``last_epoch - 1 - t_max ≡ 0 (mod 2 t_max)``, where the ratio form would divide by zero).
    """

    name: ClassVar[str] = "cosine"
    spec_params: ClassVar[tuple[Param, ...]] = (
        Param("t_max", "integer", None, low=1,
              doc="Epochs of one half cosine (torch's T_max; default: the epochs after "
                  "warmup)."),
        Param("eta_min", "number", 0.0, low=0.0, doc="The lowest learning rate."),
    )
    t_max: int
    eta_min: float

    def __init__(self, optimizer: HasLr, **hyper: Any) -> None:
        super().__init__(optimizer, **hyper)
        if self.t_max is None:  # the spec's default; make_schedule resolves it (run_defaults)
            raise TypeError("CosineAnnealingLR needs t_max")

    @classmethod
    def run_defaults(cls, epochs: int) -> dict[str, Any]:
        return {"t_max": max(1, int(epochs))}

    def _next_lr(self, lr: float) -> float:
        t, t_max, eta_min = self.last_epoch, self.t_max, self.eta_min
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return ((1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
                * (lr - eta_min) + eta_min)

    def _closed_form_lr(self) -> float:
        return (self.eta_min + (self.base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.t_max)) / 2)


class LinearLR(Schedule):
    """Linear ramp of the factor from ``start_factor`` to ``end_factor`` (torch ``LinearLR``).

    Construction already applies ``start_factor``, as torch's initial step does.
    """

    name: ClassVar[str] = "linear"

    def __init__(self, optimizer: HasLr, start_factor: float, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        super().__init__(optimizer)
        if not 0.0 < start_factor <= 1.0 or not 0.0 <= end_factor <= 1.0:
            raise ValueError("LinearLR factors must lie in (0, 1] and [0, 1]")
        self.start_factor = float(start_factor)
        self.end_factor = float(end_factor)
        self.total_iters = int(total_iters)
        self.optimizer.lr = self.optimizer.lr * self.start_factor

    def _next_lr(self, lr: float) -> float:
        if self.last_epoch > self.total_iters:
            return lr
        span = self.end_factor - self.start_factor
        return lr * (1.0 + span / (self.total_iters * self.start_factor
                                   + (self.last_epoch - 1) * span))

    def _closed_form_lr(self) -> float:
        span = self.end_factor - self.start_factor
        return self.base_lr * (self.start_factor
                               + span * min(self.total_iters, self.last_epoch) / self.total_iters)


class ReduceLROnPlateau(Schedule):
    """Multiply ``lr`` by ``factor`` after ``patience`` epochs without improvement.

    torch ``ReduceLROnPlateau``: improvement is relative (``metric < best * (1 - threshold)``
    in ``min`` mode) or absolute (``threshold_mode="abs"``); after a reduction ``cooldown``
    epochs pass before bad epochs count again; ``lr`` never drops below ``min_lr`` and changes
    smaller than ``eps`` are skipped.
    """

    name: ClassVar[str] = "reduce_on_plateau"
    spec_params: ClassVar[tuple[Param, ...]] = (
        Param("mode", "choice", "min", choices=("min", "max"),
              doc="min: the metric should fall; max: rise (default: max for an accuracy "
                  "monitor, else min)."),
        Param("factor", "number", 0.1, low=0.0, high=1.0, low_open=True, high_open=True,
              doc="Factor applied to the rate on a plateau."),
        Param("patience", "integer", 10, low=0,
              doc="Epochs without improvement before the rate drops."),
        Param("threshold", "number", 1e-4, low=0.0,
              doc="The least change that counts as an improvement."),
        Param("threshold_mode", "choice", "rel", choices=("rel", "abs"),
              doc="rel: threshold is relative to the best value; abs: absolute."),
        Param("cooldown", "integer", 0, low=0,
              doc="Epochs after a drop before bad epochs count again."),
        Param("min_lr", "number", 0.0, low=0.0, doc="The rate never drops below this."),
        Param("eps", "number", 1e-8, low=0.0, doc="A smaller change of the rate is skipped."),
    )
    reads_metric: ClassVar[bool] = True
    mode: str
    factor: float
    patience: int
    threshold: float
    threshold_mode: str
    cooldown: int
    min_lr: float
    eps: float

    def __init__(self, optimizer: HasLr, **hyper: Any) -> None:
        super().__init__(optimizer, **hyper)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (self.threshold + 1.0)
        return value > self.best + self.threshold

    def step(self, metric: float | None = None) -> None:
        if metric is None:
            raise ValueError("reduce_on_plateau needs the monitored metric at every step")
        value = float(metric)
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def restart(self) -> None:
        self._reset()
        super().restart()

    def state_dict(self) -> ScheduleState:
        return {**super().state_dict(), "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])


class WarmupSchedule(Schedule):
    """``warmup_epochs`` of linear warmup, then ``main`` restarted at ``base_lr``.

    torch ``SequentialLR([LinearLR(1/(w+1), total_iters=w), main], milestones=[w])``; build
    ``main`` first, on the same optimizer, before this wraps it.
    """

    name: ClassVar[str] = "warmup"

    def __init__(self, optimizer: HasLr, warmup_epochs: int, main: Schedule) -> None:
        super().__init__(optimizer)
        if int(warmup_epochs) < 1:
            raise SpecError(f"{FIELD}.warmup_epochs",
                            f"must be a positive integer, got {warmup_epochs}")
        self.milestone = int(warmup_epochs)
        self.main = main
        self.warmup = LinearLR(optimizer, 1.0 / (self.milestone + 1), 1.0, self.milestone)

    def step(self, metric: float | None = None) -> None:
        self.last_epoch += 1
        if self.last_epoch < self.milestone:
            self.warmup.step()
        elif self.last_epoch == self.milestone:
            self.main.restart()
        else:
            self.main.step(metric)

    def state_dict(self) -> ScheduleState:
        out = super().state_dict()
        for prefix, part in (("warmup", self.warmup), ("main", self.main)):
            out.update({f"{prefix}/{k}": v for k, v in part.state_dict().items()})
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for prefix, part in (("warmup", self.warmup), ("main", self.main)):
            head = prefix + "/"
            part.load_state_dict({k[len(head):]: v for k, v in state.items()
                                  if k.startswith(head)})
        super().load_state_dict(state)


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Schedule,
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "reduce_on_plateau": ReduceLROnPlateau,
}


def make_schedule(spec: Any, optimizer: HasLr, epochs: int) -> Schedule:
    """Build the schedule an ``LrScheduleSpec`` describes (None: a constant rate).

    Parameters
    ----------
    spec : None, or an object with ``type``, the JSON names of the class's ``spec_params``
        and optionally ``warmup_epochs``; a missing or None attribute keeps the default
    optimizer : the optimizer whose current ``lr`` is the base rate
    epochs : the run's epoch count; cosine's ``t_max`` defaults to ``epochs - warmup_epochs``
    """
    if spec is None:
        return Schedule(optimizer)
    kind = spec.type
    if kind not in SCHEDULES:
        raise SpecError(f"{FIELD}.type",
                        f"unknown lr_schedule {kind!r}; expected one of {sorted(SCHEDULES)}")
    cls = SCHEDULES[kind]
    warmup = int(getattr(spec, "warmup_epochs", None) or 0)
    hyper = cls.run_defaults(int(epochs) - warmup)
    for p in cls.spec_params:
        value = getattr(spec, p.name, None)
        if value is not None:
            hyper[p.name] = value
    main = cls(optimizer, **hyper)
    return WarmupSchedule(optimizer, warmup, main) if warmup else main
