"""``training`` (with ``early_stopping``), ``loss``, ``regularization`` and ``checkpoints``.

Each section declares its fields once as a ``tuple[Param, ...]`` (losses: one class per
type in :data:`LOSS_SPECS`, each with ``spec_params``); the parsers below, the JSON Schema
(``core.spec.schema``) and ``docs/spec.md`` (``core.spec.reference``) all read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from core.errors import SpecError
from core.monitors import MONITORS
from core.spec.fields import MISSING, Section, is_int, is_number, show, unknown_name_message
from core.spec.optim import LrScheduleSpec, parse_schedule
from core.spec.params import Param

DTYPES = ("float32", "float64")
MONITOR_DOC = ("The metric to watch; default val_loss, or loss when "
               "training.validation_split is 0. Accuracies exist for classification losses only.")


def default_monitor(validation_split: float) -> str:
    """What a monitor watches unless told: the validation loss when there is a split."""
    return "val_loss" if validation_split > 0 else "loss"


# ---------------------------------------------------------------------------- loss


def _read_class_weights(s: Section, p: Param) -> tuple[float, ...] | None:
    if not s.has(p.name):
        return None
    raw = s.data[p.name]
    if isinstance(raw, list) and raw and all(is_number(w) and w > 0 for w in raw):
        return tuple(float(w) for w in raw)
    s.error(p.name, f"must be a non-empty list of positive numbers (one per class) or null, "
            f"got {show(raw)}")
    return None


LABEL_SMOOTHING = Param(
    "label_smoothing", "number", 0.0, low=0.0, high=1.0, high_open=True, example=0.1,
    doc="Mixes the one-hot target with the uniform distribution (torch's label_smoothing).")
CLASS_WEIGHTS = Param(
    "class_weights", "custom", None, reader=_read_class_weights, example=[1.0, 2.0, 1.0],
    schema={"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
            "minItems": 1,
            "x-allowed": "null, or a non-empty list of positive numbers (one per output unit)"},
    doc="One weight per class (torch's weight); the mean divides by the summed weights "
        "of the targets.")
DELTA = Param("delta", "number", 1.0, low=0.0, low_open=True, example=0.5,
              doc="Where the loss turns from quadratic to linear (torch.nn.HuberLoss's delta).")


class LossType:
    """Base of the loss registry: a loss's JSON fields besides ``type``."""

    spec_params: ClassVar[tuple[Param, ...]] = ()
    classification: ClassVar[bool] = False   # labels in, accuracy reported, predict gives classes


class CrossEntropyLoss(LossType):
    """Softmax cross-entropy of logits (N, C) and integer labels (torch.nn.CrossEntropyLoss).

    The model's last layer outputs logits (no softmax); predict applies softmax.
    """

    spec_params = (LABEL_SMOOTHING, CLASS_WEIGHTS)
    classification = True


class BinaryCrossEntropyLoss(LossType):
    """Sigmoid cross-entropy of logits and 0/1 targets (torch.nn.BCEWithLogitsLoss).

    The model's last layer outputs logits (no sigmoid); predict applies the sigmoid.
    """

    classification = True


class MSELoss(LossType):
    """Mean squared error (torch.nn.MSELoss)."""


class MAELoss(LossType):
    """Mean absolute error (torch.nn.L1Loss)."""


class HuberLoss(LossType):
    """Huber loss: quadratic within delta of the target, linear beyond (torch.nn.HuberLoss)."""

    spec_params = (DELTA,)


# type -> class; core.losses.LOSSES implements the same names (tests/core/test_spec.py).
LOSS_SPECS: dict[str, type[LossType]] = {
    "cross_entropy": CrossEntropyLoss,
    "binary_cross_entropy": BinaryCrossEntropyLoss,
    "mse": MSELoss,
    "mae": MAELoss,
    "huber": HuberLoss,
}
DEFAULT_LOSS = "cross_entropy"
LOSS_TYPES = tuple(LOSS_SPECS)
CLASSIFICATION_LOSSES = frozenset(n for n, cls in LOSS_SPECS.items() if cls.classification)


@dataclass(frozen=True)
class LossSpec:
    """``loss``: cross_entropy and binary_cross_entropy take logits (predict applies the link).

    Every field of every type is here; the ones the type does not declare keep their
    defaults and are left out of ``to_dict``.
    """

    type: str = DEFAULT_LOSS
    label_smoothing: float = LABEL_SMOOTHING.default
    class_weights: tuple[float, ...] | None = CLASS_WEIGHTS.default
    delta: float = DELTA.default

    def __post_init__(self) -> None:
        if self.class_weights is not None:
            object.__setattr__(self, "class_weights", tuple(self.class_weights))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for p in LOSS_SPECS[self.type].spec_params:
            value = getattr(self, p.name)
            out[p.name] = list(value) if isinstance(value, tuple) else value
        return out


def parse_loss(value: Any, path: str, errors: list[SpecError]) -> LossSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return LossSpec()
    kind = s.data.get("type", DEFAULT_LOSS)
    if not isinstance(kind, str) or kind not in LOSS_SPECS:
        s.error("type", unknown_name_message("loss", kind, LOSS_TYPES))
        return LossSpec()
    params = LOSS_SPECS[kind].spec_params
    owners = {p.name: name for name, cls in LOSS_SPECS.items() for p in cls.spec_params}
    s.check_keys(["type", *(p.name for p in params)],
                 hints={k: f"only used by the {owner} loss, not {kind}"
                        for k, owner in owners.items()})
    return LossSpec(kind, **{p.name: p.read(s) for p in params})


# ---------------------------------------------------------------------------- regularization

L1 = Param("l1", "number", 0.0, low=0.0, example=1e-5,
           doc="Adds λ·Σ|W| to the loss (dense and conv weights only, not biases).")
L2 = Param("l2", "number", 0.0, low=0.0, example=1e-4,
           doc="Adds (λ/2)·Σ‖W‖² to the loss (weights only); optimizer.weight_decay is "
               "torch's alternative.")
REGULARIZATION_PARAMS: tuple[Param, ...] = (L1, L2)


@dataclass(frozen=True)
class RegularizationSpec:
    """``regularization``: l2 adds (λ/2)·Σ‖W‖², l1 adds λ·Σ|W| (weights only, not biases)."""

    l1: float = L1.default
    l2: float = L2.default

    def to_dict(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


def parse_regularization(value: Any, path: str, errors: list[SpecError]) -> RegularizationSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return RegularizationSpec()
    s.check_keys(p.name for p in REGULARIZATION_PARAMS)
    return RegularizationSpec(**{p.name: p.read(s) for p in REGULARIZATION_PARAMS})


# ---------------------------------------------------------------------------- early stopping

ES_MONITOR = Param("monitor", "choice", "val_loss", choices=MONITORS, doc=MONITOR_DOC)
ES_MODE = Param("mode", "choice", "auto", choices=("auto", "min", "max"),
                doc='"auto" is max for accuracies and min for losses.')
ES_PATIENCE = Param("patience", "integer", 5, low=0, example=10,
                    doc="Epochs without improvement before stopping (Keras's default 0 stops "
                        "at the first noisy epoch).")
ES_MIN_DELTA = Param("min_delta", "number", 0.0, low=0.0, example=1e-4,
                     doc="The smallest change that counts as an improvement.")
ES_RESTORE_BEST = Param("restore_best", "boolean", True,
                        doc="Put the best epoch's weights back however training ends.")
EARLY_STOPPING_PARAMS: tuple[Param, ...] = (ES_MONITOR, ES_MODE, ES_PATIENCE, ES_MIN_DELTA,
                                            ES_RESTORE_BEST)


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """``training.early_stopping``: stop after ``patience`` epochs without an improvement
    larger than ``min_delta`` in ``monitor``; ``mode`` "auto" = max for accuracies.
    ``restore_best`` puts the best epoch's weights back however training ends."""

    monitor: str = ES_MONITOR.default
    mode: str = ES_MODE.default
    patience: int = ES_PATIENCE.default
    min_delta: float = ES_MIN_DELTA.default
    restore_best: bool = ES_RESTORE_BEST.default

    def to_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "min_delta": self.min_delta, "restore_best": self.restore_best}


def _parse_early_stopping(value: Any, path: str, errors: list[SpecError],
                          monitor: str) -> EarlyStoppingSpec | None:
    s = Section.of(value, path, errors)
    if s is None:
        return None
    s.check_keys(p.name for p in EARLY_STOPPING_PARAMS)
    return EarlyStoppingSpec(**_read_all(s, EARLY_STOPPING_PARAMS, monitor=monitor))


# ---------------------------------------------------------------------------- checkpoints

CKPT_EVERY = Param("every_epochs", "integer", 1, low=1, example=5,
                   doc="Save a checkpoint every this many epochs (the final one is always "
                       "saved).")
CKPT_KEEP_LAST = Param("keep_last", "integer", 3, low=1,
                       doc="Keep the newest this many periodic checkpoints.")
CKPT_KEEP_BEST = Param("keep_best", "integer", 1, low=0,
                       doc="Also keep the best this many by monitor.")
CKPT_MONITOR = Param("monitor", "choice", "val_loss", choices=MONITORS, doc=MONITOR_DOC)
CHECKPOINT_PARAMS: tuple[Param, ...] = (CKPT_EVERY, CKPT_KEEP_LAST, CKPT_KEEP_BEST,
                                        CKPT_MONITOR)


@dataclass(frozen=True)
class CheckpointPolicy:
    """``checkpoints``: save every ``every_epochs`` epochs, keep the ``keep_last`` newest and
    the ``keep_best`` best by ``monitor`` (the final checkpoint is always kept)."""

    every_epochs: int = CKPT_EVERY.default
    keep_last: int = CKPT_KEEP_LAST.default
    keep_best: int = CKPT_KEEP_BEST.default
    monitor: str = CKPT_MONITOR.default

    def to_dict(self) -> dict[str, Any]:
        return {"every_epochs": self.every_epochs, "keep_last": self.keep_last,
                "keep_best": self.keep_best, "monitor": self.monitor}


def parse_checkpoints(value: Any, path: str, errors: list[SpecError],
                      default_monitor: str) -> CheckpointPolicy:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return CheckpointPolicy()
    s.check_keys(p.name for p in CHECKPOINT_PARAMS)
    return CheckpointPolicy(**_read_all(s, CHECKPOINT_PARAMS, monitor=default_monitor))


# ---------------------------------------------------------------------------- training


def _read_batch_size(s: Section, p: Param) -> int | str:
    raw = s.data.get(p.name)
    if raw is None:
        return p.default  # type: ignore[no-any-return]
    if raw == "full":
        return "full"
    if is_int(raw) and raw >= 1:
        return int(raw)
    s.error(p.name, f"must be a positive integer or \"full\", got {show(raw)}")
    return p.default  # type: ignore[no-any-return]


EPOCHS = Param("epochs", "integer", 20, low=1, doc="Passes over the training split.")
BATCH_SIZE = Param(
    "batch_size", "custom", 32, reader=_read_batch_size, example="full",
    schema={"anyOf": [{"type": "integer", "minimum": 1}, {"const": "full"}],
            "x-allowed": 'a positive integer, or "full" (the whole training split)'},
    doc='Rows per optimizer step; "full" is full-batch gradient descent.')
SHUFFLE = Param("shuffle", "boolean", True,
                doc="Shuffle the training rows each epoch (seeded).")
SEED = Param("seed", "integer", 0, low=0, example=42,
             doc="Seeds the split, the shuffles, initialization and dropout: the same seed "
                 "gives the same bits.")
DTYPE = Param("dtype", "choice", "float32", choices=DTYPES,
              doc="The floating-point type of weights and arithmetic.")
VALIDATION_SPLIT = Param(
    "validation_split", "number", 0.1, low=0.0, high=1.0, high_open=True, example=0.2,
    doc="The fraction of rows held out (seeded) for val_loss and val_accuracy; 0 for none.")
STANDARDIZE = Param("standardize", "boolean", True,
                    doc="Scale each input feature by the training rows' mean and std "
                        "(stored in the checkpoint).")
EARLY_STOPPING = Param(
    "early_stopping", "custom", None, schema={"$ref": "#/$defs/EarlyStopping"},
    doc="Stop when the monitored metric stops improving; off when null.",
    example={"patience": 10})
LR_SCHEDULE = Param(
    "lr_schedule", "custom", None, schema={"$ref": "#/$defs/LrSchedule"},
    doc="Changes the learning rate once per epoch; constant when null.",
    example={"type": "cosine", "warmup_epochs": 2})
CLIP_GRAD_NORM = Param("clip_grad_norm", "number", None, low=0.0, low_open=True, example=1.0,
                       doc="Clip the global L2 norm of the gradients to this "
                           "(torch.nn.utils.clip_grad_norm_); off when null.")
MAX_RUNTIME_S = Param("max_runtime_s", "number", None, low=0.0, low_open=True, example=600,
                      doc="Stop (with a checkpoint) after this many seconds of training; the "
                          "service may impose a tighter cap.")
DIAGNOSTICS = Param(
    "diagnostics", "boolean", True,
    doc="Record per-layer diagnostics each epoch (weight norm, RMS gradient norm, update "
        "ratio, dead ReLU units; GET /v1/jobs/{id}/diagnostics) and warn on stuck or dead "
        "layers; they cost under 5% of an epoch and never change the result.")
# early_stopping and lr_schedule are nested sections: parse_training reads them with their
# own parsers, since their monitor default depends on validation_split.
TRAINING_PARAMS: tuple[Param, ...] = (EPOCHS, BATCH_SIZE, SHUFFLE, SEED, DTYPE,
                                      VALIDATION_SPLIT, STANDARDIZE, EARLY_STOPPING,
                                      LR_SCHEDULE, CLIP_GRAD_NORM, MAX_RUNTIME_S, DIAGNOSTICS)
_NESTED = (EARLY_STOPPING, LR_SCHEDULE)


@dataclass(frozen=True)
class TrainingSpec:
    """``training``. ``batch_size`` is an int or "full" (the whole training split).

    ``validation_split`` in [0, 1) is held out (seeded) before training; ``standardize``
    fits mean/std on the training rows only. ``clip_grad_norm`` (global L2 norm) and
    ``max_runtime_s`` are off when null; ``diagnostics`` switches core.diagnostics.
    """

    epochs: int = EPOCHS.default
    batch_size: int | str = BATCH_SIZE.default
    shuffle: bool = SHUFFLE.default
    seed: int = SEED.default
    dtype: str = DTYPE.default
    validation_split: float = VALIDATION_SPLIT.default
    standardize: bool = STANDARDIZE.default
    early_stopping: EarlyStoppingSpec | None = None
    lr_schedule: LrScheduleSpec | None = None
    clip_grad_norm: float | None = CLIP_GRAD_NORM.default
    max_runtime_s: float | None = MAX_RUNTIME_S.default
    diagnostics: bool = DIAGNOSTICS.default

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
            "seed": self.seed, "dtype": self.dtype, "validation_split": self.validation_split,
            "standardize": self.standardize,
            "early_stopping": None if self.early_stopping is None
            else self.early_stopping.to_dict(),
            "lr_schedule": None if self.lr_schedule is None else self.lr_schedule.to_dict(),
            "clip_grad_norm": self.clip_grad_norm, "max_runtime_s": self.max_runtime_s,
            "diagnostics": self.diagnostics,
        }


def parse_training(value: Any, path: str, errors: list[SpecError]) -> TrainingSpec:
    s = Section.of(value, path, errors) if value is not None else Section({}, path, errors)
    if s is None:
        return TrainingSpec()
    s.check_keys(p.name for p in TRAINING_PARAMS)
    values = {p.name: p.read(s) for p in TRAINING_PARAMS if p not in _NESTED}
    monitor = default_monitor(values["validation_split"])
    if s.has(EARLY_STOPPING.name):
        values[EARLY_STOPPING.name] = _parse_early_stopping(
            s.data[EARLY_STOPPING.name], s.field(EARLY_STOPPING.name), errors, monitor)
    if s.has(LR_SCHEDULE.name):
        schedule = parse_schedule(s.data[LR_SCHEDULE.name], s.field(LR_SCHEDULE.name),
                                  errors, monitor)
        epochs = values["epochs"]
        if schedule is not None and schedule.warmup_epochs >= epochs:
            errors.append(SpecError(f"{s.field(LR_SCHEDULE.name)}.warmup_epochs",
                                    f"must be less than training.epochs ({epochs}), "
                                    f"got {schedule.warmup_epochs}"))
        values[LR_SCHEDULE.name] = schedule
    return TrainingSpec(**values)


def _read_all(s: Section, params: tuple[Param, ...], **defaults: Any) -> dict[str, Any]:
    """Every param's value; ``defaults`` overrides declared defaults that depend on context."""
    return {p.name: p.read(s, defaults.get(p.name, MISSING)) for p in params}


__all__ = ["CHECKPOINT_PARAMS", "CLASSIFICATION_LOSSES", "DEFAULT_LOSS", "DTYPES",
           "EARLY_STOPPING_PARAMS", "LOSS_SPECS", "LOSS_TYPES", "REGULARIZATION_PARAMS",
           "TRAINING_PARAMS", "CheckpointPolicy", "EarlyStoppingSpec", "LossSpec", "LossType",
           "RegularizationSpec", "TrainingSpec", "default_monitor",
           "parse_checkpoints", "parse_loss", "parse_regularization", "parse_training"]
