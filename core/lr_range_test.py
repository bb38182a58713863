"""The learning-rate range test: which rate to train with, from one short run.

Leslie Smith's test ("Cyclical Learning Rates for Training Neural Networks", 2017, section
3.3), as fastai's ``lr_find`` and pytorch-lr-finder run it: train from the spec's initial
weights while the learning rate rises exponentially batch by batch, and watch the loss fall,
then blow up. The rules, each written once here (docs/lr-range-test.md explains them):

Schedule
    ``lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))`` for batch ``i = 0 .. steps-1``:
    the first batch steps with ``min_lr`` and the last with ``max_lr`` exactly (fastai's
    ``SchedExp`` evaluates at ``i / steps`` and never reaches its end rate).
Recording
    batch ``i``'s loss is its forward loss before its own step (the weights the steps at
    ``lr_0 .. lr_{i-1}`` made), paired with ``lr_i``: fastai's ``Recorder`` pairs them so.
Smoothing
    an exponential moving average with bias correction (fastai's ``AvgSmoothLoss``,
    ``beta = 0.98``): ``a_i = beta * a_{i-1} + (1 - beta) * loss_i`` from ``a_{-1} = 0``,
    ``smoothed_i = a_i / (1 - beta ** (i + 1))``; so ``smoothed_0 = loss_0``, and early values
    are not pulled towards zero as a plain EMA's are.
Stop rule
    after recording batch ``i``, stop once ``smoothed_i > 4 * min(smoothed_0 .. smoothed_i)``
    (fastai's ``stop_div``); a non-finite loss stops at once and is not recorded (JSON has
    no NaN). Otherwise the test ends after ``steps`` batches.
Suggestion
    the steepest descent of the smoothed loss against ``ln lr``: forward differences
    ``(smoothed_{i+1} - smoothed_i) / (ln lr_{i+1} - ln lr_i)`` over the recorded points less
    the first ``steps // 10`` and the last 5 (the start is noise around the initial loss, the
    end is the blow-up: fastai's and pytorch-lr-finder's trims), and the rate at the left end
    of the most negative difference (fastai's ``steep``). None when fewer than two points
    remain or no difference is negative: the loss never fell, so no rate is suggested.

Pure NumPy and stdlib: the training loop calls :meth:`RangeTest.rate` once per batch
(``core.training.train(..., batch_lr=...)``); the worker stores :meth:`RangeTest.result`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.batching import split_indices
from core.errors import SpecError
from core.spec.params import Param, check_values

Array = NDArray[np.float64]

#: fastai's AvgSmoothLoss
SMOOTHING_BETA = 0.98
#: the smoothed loss past this many times its minimum ends the test (fastai's stop_div)
STOP_FACTOR = 4.0
#: points left out of the suggestion at the end: the blow-up
SKIP_END = 5
#: fewer steps leave no points for a suggestion once the trims are applied
MIN_STEPS = 10

#: the request's fields besides ``spec``; fastai's lr_find defaults
PARAMS: tuple[Param, ...] = (
    Param("min_lr", "number", 1e-7, low=0.0, low_open=True,
          doc="The learning rate of the first batch."),
    Param("max_lr", "number", 10.0, low=0.0, low_open=True,
          doc="The learning rate of the last batch; greater than min_lr."),
    Param("steps", "integer", 100, low=MIN_STEPS,
          doc="Batches over which the rate rises from min_lr to max_lr."),
)

# Why the test ended (a job's stop_reason); the worker's own stops (cancelled,
# max_runtime) keep their names.
STEPS_DONE, LOSS_EXCEEDED, LOSS_NOT_FINITE = "steps_done", "loss_exceeded", "loss_not_finite"
STOP_REASONS = (STEPS_DONE, LOSS_EXCEEDED, LOSS_NOT_FINITE)


@dataclass(frozen=True)
class RangeTestSpec:
    """The range asked for, checked."""

    min_lr: float
    max_lr: float
    steps: int

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], *, max_steps: int) -> RangeTestSpec:
        """``min_lr``, ``max_lr``, ``steps`` of a request (absent or null: the defaults).

        Raises SpecError naming the field: each must be in its range, ``min_lr < max_lr``
        and ``steps <= max_steps`` (the service's limit).
        """
        values = check_values(PARAMS, {p.name: body.get(p.name) for p in PARAMS}, "")
        min_lr, max_lr, steps = float(values["min_lr"]), float(values["max_lr"]), \
            int(values["steps"])
        errors = []
        if not min_lr < max_lr:
            errors.append(SpecError("max_lr", f"must be greater than min_lr ({min_lr:g}), "
                                              f"got {max_lr:g}"))
        elif not math.isfinite(max_lr / min_lr):
            errors.append(SpecError("max_lr", f"max_lr / min_lr must be a finite number, got "
                                              f"{max_lr:g} / {min_lr:g}"))
        if steps > max_steps:
            errors.append(SpecError("steps", f"must be at most {max_steps}, got {steps}"))
        if errors:
            raise errors[0] if len(errors) == 1 else SpecError.many(errors)
        return cls(min_lr, max_lr, steps)

    def to_dict(self) -> dict[str, Any]:
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "steps": self.steps}

    def lrs(self) -> Array:
        """Every batch's rate: ``lr_i = min_lr * (max_lr / min_lr) ** (i / (steps - 1))``."""
        i = np.arange(self.steps, dtype=np.float64)
        return self.min_lr * (self.max_lr / self.min_lr) ** (i / (self.steps - 1))

    def epochs(self, n_rows: int, validation_split: float, seed: int,
               batch_size: int | str) -> int:
        """Epochs that hold ``steps`` batches of the spec's training split."""
        n_train = int(split_indices(n_rows, validation_split, seed)[0].shape[0])
        rows = n_train if batch_size == "full" else max(1, min(int(batch_size), n_train))
        per_epoch = -(-n_train // rows)
        return -(-self.steps // per_epoch)

    def job_spec(self, spec: Mapping[str, Any], n_rows: int) -> dict[str, Any]:
        """The spec the test's job runs: ``spec`` (a parsed spec's ``to_dict()``) with
        enough epochs for ``steps`` batches, the optimizer starting at ``min_lr``, no
        schedule (the test sets every batch's rate) and no early stopping. Its checkpoint
        policy stays as written, unused: the worker stores no checkpoint of a test."""
        training = dict(spec["training"])
        epochs = self.epochs(n_rows, float(training.get("validation_split") or 0.0),
                             int(training.get("seed") or 0), training.get("batch_size", 32))
        training.update(epochs=epochs, lr_schedule=None, early_stopping=None)
        optimizer = {**dict(spec["optimizer"]), "learning_rate": self.min_lr}
        return {**dict(spec), "training": training, "optimizer": optimizer}


def smooth(losses: Array | list[float], beta: float = SMOOTHING_BETA) -> Array:
    """The bias-corrected exponential moving average of ``losses`` (module docstring)."""
    out = np.empty(len(losses), dtype=np.float64)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def suggest(lrs: Array | list[float], smoothed: Array | list[float],
            steps: int) -> int | None:
    """The index of the suggested rate (module docstring: Suggestion), or None."""
    lr = np.asarray(lrs, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    start, stop = steps // 10, len(s) - SKIP_END
    if stop - start < 2:
        return None
    slopes = np.diff(s[start:stop]) / np.diff(np.log(lr[start:stop]))
    best = int(np.argmin(slopes))
    return start + best if slopes[best] < 0.0 else None


@dataclass
class RangeTest:
    """The per-batch hook of one test run: :meth:`rate` is called with each batch's loss.

    Deterministic: it holds no clock and no randomness; the training run it drives is
    deterministic for the spec's seed, so the whole series is.
    """

    spec: RangeTestSpec
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    _lrs: list[float] = field(default_factory=list, repr=False)
    _avg: float = field(default=0.0, repr=False)
    _best: float = field(default=math.inf, repr=False)

    def __post_init__(self) -> None:
        self._lrs = [float(v) for v in self.spec.lrs()]

    def rate(self, loss: float) -> float | None:
        """Record batch ``i``'s loss (before its step); the rate its step takes, or None:
        the test is over (``stop_reason`` says why) and this batch takes no step."""
        if self.stop_reason is not None:
            return None
        i = len(self.losses)
        if i >= self.spec.steps:
            self.stop_reason = STEPS_DONE
            return None
        avg = SMOOTHING_BETA * self._avg + (1.0 - SMOOTHING_BETA) * float(loss)
        smoothed = avg / (1.0 - SMOOTHING_BETA ** (i + 1))
        if not (math.isfinite(loss) and math.isfinite(smoothed)):
            self.stop_reason = LOSS_NOT_FINITE
            return None
        self._avg = avg
        self.losses.append(float(loss))
        self.smoothed.append(smoothed)
        self._best = min(self._best, smoothed)
        if smoothed > STOP_FACTOR * self._best:
            self.stop_reason = LOSS_EXCEEDED
            return None
        return self._lrs[i]

    @property
    def lrs(self) -> list[float]:
        """The rates of the recorded batches."""
        return self._lrs[:len(self.losses)]

    def finished(self, loop_stop: str) -> str:
        """Why the test ended, given the training loop's stop reason: the test's own reason;
        ``steps_done`` when the loop ran out of epochs exactly at the last step;
        ``loss_not_finite`` for the loop's ``diverged`` (a validation loss that became
        non-finite at an epoch's end: the blow-up the test looks for); else the loop's
        reason (``cancelled``, ``max_runtime``)."""
        if self.stop_reason is not None:
            return self.stop_reason
        if loop_stop == "epochs_done" and len(self.losses) >= self.spec.steps:
            return STEPS_DONE
        return LOSS_NOT_FINITE if loop_stop == "diverged" else loop_stop

    def result(self) -> dict[str, Any]:
        """The series and the suggestion, JSON-able (every value finite)."""
        lrs = self.lrs
        index = suggest(lrs, self.smoothed, self.spec.steps)
        return {
            "series": [{"lr": lr, "loss": loss, "smoothed_loss": s}
                       for lr, loss, s in zip(lrs, self.losses, self.smoothed, strict=True)],
            "min_smoothed_loss": min(self.smoothed) if self.smoothed else None,
            "suggestion": None if index is None else {
                "lr": lrs[index], "index": index, "smoothed_loss": self.smoothed[index]},
        }
