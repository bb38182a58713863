"""``training`` (with ``early_stopping``), ``loss``, ``regularization`` and ``checkpoints``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import SpecError
from core.spec.fields import Section, is_int, is_number, show, unknown_name_message
from core.spec.optim import MONITORS, LrScheduleSpec, default_mode, parse_schedule

LOSS_TYPES = ("cross_entropy", "binary_cross_entropy", "mse", "mae", "huber")
CLASSIFICATION_LOSSES = frozenset({"cross_entropy", "binary_cross_entropy"})
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class LossSpec:
    """``loss``: cross_entropy and binary_cross_entropy take logits (predict applies the link).

    ``label_smoothing`` and ``class_weights`` (one positive weight per class) belong to
    cross_entropy, ``delta`` (default 1.0, torch's) to huber.
    """

    type: str = "cross_entropy"
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None
    delta: float = 1.0

    def __post_init__(self) -> None:
        if self.class_weights is not None:
            object.__setattr__(self, "class_weights", tuple(self.class_weights))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "cross_entropy":
            out["label_smoothing"] = self.label_smoothing
            out["class_weights"] = None if self.class_weights is None else list(self.class_weights)
        if self.type == "huber":
            out["delta"] = self.delta
        return out


def parse_loss(value: Any, path: str, errors: list[SpecError]) -> LossSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return LossSpec()
    kind = s.data.get("type", "cross_entropy")
    if not isinstance(kind, str) or kind not in LOSS_TYPES:
        s.error("type", unknown_name_message("loss", kind, LOSS_TYPES))
        return LossSpec()
    owners = {"label_smoothing": "cross_entropy", "class_weights": "cross_entropy",
              "delta": "huber"}
    allowed = ["type", *(k for k, owner in owners.items() if owner == kind)]
    s.check_keys(allowed, hints={k: f"only used by the {owner} loss, not {kind}"
                                 for k, owner in owners.items()})
    smoothing = s.number("label_smoothing", 0.0, low=0.0, high=1.0, high_open=True)
    delta = s.number("delta", 1.0, low=0.0, low_open=True)
    weights: tuple[float, ...] | None = None
    if s.has("class_weights"):
        raw = s.data["class_weights"]
        if isinstance(raw, list) and raw and all(is_number(w) and w > 0 for w in raw):
            weights = tuple(float(w) for w in raw)
        else:
            s.error("class_weights", f"must be a non-empty list of positive numbers (one per "
                    f"class) or null, got {show(raw)}")
    return LossSpec(str(kind), smoothing, weights, delta)


@dataclass(frozen=True)
class RegularizationSpec:
    """``regularization``: l2 adds (λ/2)·Σ‖W‖², l1 adds λ·Σ|W| (weights only, not biases)."""

    l1: float = 0.0
    l2: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


def parse_regularization(value: Any, path: str, errors: list[SpecError]) -> RegularizationSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return RegularizationSpec()
    s.check_keys(("l1", "l2"))
    return RegularizationSpec(s.number("l1", 0.0, low=0.0), s.number("l2", 0.0, low=0.0))


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """``training.early_stopping``: stop after ``patience`` epochs without an improvement
    larger than ``min_delta`` in ``monitor``; ``mode`` "auto" = max for accuracies.
    ``restore_best`` puts the best epoch's weights back however training ends.
    Default patience 5 (Keras's 0 stops at the first noisy epoch)."""

    monitor: str = "val_loss"
    mode: str = "auto"
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "min_delta": self.min_delta, "restore_best": self.restore_best}


@dataclass(frozen=True)
class CheckpointPolicy:
    """``checkpoints``: save every ``every_epochs`` epochs, keep the ``keep_last`` newest and
    the ``keep_best`` best by ``monitor`` (the final checkpoint is always kept)."""

    every_epochs: int = 1
    keep_last: int = 3
    keep_best: int = 1
    monitor: str = "val_loss"

    def to_dict(self) -> dict[str, Any]:
        return {"every_epochs": self.every_epochs, "keep_last": self.keep_last,
                "keep_best": self.keep_best, "monitor": self.monitor}


def parse_checkpoints(value: Any, path: str, errors: list[SpecError],
                      default_monitor: str) -> CheckpointPolicy:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return CheckpointPolicy()
    s.check_keys(("every_epochs", "keep_last", "keep_best", "monitor"))
    return CheckpointPolicy(s.integer("every_epochs", 1, minimum=1),
                            s.integer("keep_last", 3, minimum=1),
                            s.integer("keep_best", 1, minimum=0),
                            s.choice("monitor", default_monitor, MONITORS))


@dataclass(frozen=True)
class TrainingSpec:
    """``training``. ``batch_size`` is an int or "full" (the whole training split).

    ``validation_split`` in [0, 1) is held out (seeded) before training; ``standardize``
    fits mean/std on the training rows only. ``clip_grad_norm`` (global L2 norm) and
    ``max_runtime_s`` are off when null.
    """

    epochs: int = 20
    batch_size: int | str = 32
    shuffle: bool = True
    seed: int = 0
    dtype: str = "float32"
    validation_split: float = 0.1
    standardize: bool = True
    early_stopping: EarlyStoppingSpec | None = None
    lr_schedule: LrScheduleSpec | None = None
    clip_grad_norm: float | None = None
    max_runtime_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
            "seed": self.seed, "dtype": self.dtype, "validation_split": self.validation_split,
            "standardize": self.standardize,
            "early_stopping": None if self.early_stopping is None
            else self.early_stopping.to_dict(),
            "lr_schedule": None if self.lr_schedule is None else self.lr_schedule.to_dict(),
            "clip_grad_norm": self.clip_grad_norm, "max_runtime_s": self.max_runtime_s,
        }


TRAINING_KEYS = ("epochs", "batch_size", "shuffle", "seed", "dtype", "validation_split",
                 "standardize", "early_stopping", "lr_schedule", "clip_grad_norm",
                 "max_runtime_s")


def parse_training(value: Any, path: str, errors: list[SpecError]) -> TrainingSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return TrainingSpec()
    s.check_keys(TRAINING_KEYS)
    epochs = s.integer("epochs", 20, minimum=1)
    batch: int | str = 32
    raw = s.data.get("batch_size")
    if raw == "full":
        batch = "full"
    elif raw is not None and is_int(raw) and raw >= 1:
        batch = int(raw)
    elif raw is not None:
        s.error("batch_size", f"must be a positive integer or \"full\", got {show(raw)}")
    split = s.number("validation_split", 0.1, low=0.0, high=1.0, high_open=True)
    monitor = "val_loss" if split > 0 else "loss"
    stopping = None
    if s.has("early_stopping"):
        stopping = _parse_early_stopping(s.data["early_stopping"], s.field("early_stopping"),
                                         errors, monitor)
    schedule = None
    if s.has("lr_schedule"):
        schedule = parse_schedule(s.data["lr_schedule"], s.field("lr_schedule"), errors,
                                  monitor)
        if schedule is not None and schedule.warmup_epochs >= epochs:
            errors.append(SpecError(f"{s.field('lr_schedule')}.warmup_epochs",
                                    f"must be less than training.epochs ({epochs}), "
                                    f"got {schedule.warmup_epochs}"))
    return TrainingSpec(
        epochs=epochs, batch_size=batch, shuffle=s.boolean("shuffle", True),
        seed=s.integer("seed", 0, minimum=0),
        dtype=s.choice("dtype", "float32", DTYPES), validation_split=split,
        standardize=s.boolean("standardize", True), early_stopping=stopping,
        lr_schedule=schedule,
        clip_grad_norm=s.number("clip_grad_norm", None, low=0.0, low_open=True),
        max_runtime_s=s.number("max_runtime_s", None, low=0.0, low_open=True),
    )


def _parse_early_stopping(value: Any, path: str, errors: list[SpecError],
                          default_monitor: str) -> EarlyStoppingSpec | None:
    s = Section.of(value, path, errors)
    if s is None:
        return None
    s.check_keys(("monitor", "mode", "patience", "min_delta", "restore_best"))
    return EarlyStoppingSpec(
        monitor=s.choice("monitor", default_monitor, MONITORS),
        mode=s.choice("mode", "auto", ("auto", "min", "max")),
        patience=s.integer("patience", 5, minimum=0),
        min_delta=s.number("min_delta", 0.0, low=0.0),
        restore_best=s.boolean("restore_best", True),
    )


__all__ = ["CLASSIFICATION_LOSSES", "DTYPES", "LOSS_TYPES", "CheckpointPolicy",
           "EarlyStoppingSpec", "LossSpec", "RegularizationSpec", "TrainingSpec", "default_mode",
           "parse_checkpoints", "parse_loss", "parse_regularization", "parse_training"]
