"""Tracking the best epoch of a monitored metric, and early stopping on top of it.

Keras semantics: an epoch improves when it beats the best by more than ``min_delta`` in the
monitored direction; after ``patience`` epochs in a row without improvement training stops.
``mode="auto"`` takes the metric's direction from :func:`core.monitors.direction`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.monitors import monitored_value, resolve_mode


class BestTracker:
    """The best value of one metric so far and the epoch it came from."""

    def __init__(self, monitor: str, mode: str | None = "auto", min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Record epoch ``epoch``'s metrics; True when it is the new best."""
        value = monitored_value(metrics, self.monitor)
        if value is None or not self.improves(value):
            return False
        self.best, self.best_epoch = float(value), epoch
        return True

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (floats round-trip exactly through JSON)."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = state["best_epoch"]


class EarlyStopping(BestTracker):
    """Stop after ``patience`` epochs without improvement; optionally restore the best weights.

    Parameters
    ----------
    monitor, mode, min_delta : see :class:`BestTracker`
    patience : stop after this many epochs in a row without improvement (0 acts like 1)
    restore_best : the training loop keeps a copy of the weights of the best epoch and puts
        them back when training ends, whatever the reason
    """

    def __init__(self, monitor: str = "val_loss", mode: str | None = "auto", patience: int = 0,
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best = bool(restore_best)
        self.wait = 0

    @classmethod
    def from_spec(cls, spec: Any) -> EarlyStopping:
        """From an early-stopping spec (dataclass or dict with the keys of docs/spec.md)."""
        def get(name: str, default: Any) -> Any:
            value = spec.get(name) if isinstance(spec, Mapping) else getattr(spec, name, None)
            return default if value is None else value

        return cls(get("monitor", "val_loss"), get("mode", "auto"), get("patience", 0),
                   get("min_delta", 0.0), get("restore_best", True))

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        improved = super().update(epoch, metrics)
        self.wait = 0 if improved else self.wait + 1
        return improved

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row failed to improve."""
        return self.wait > 0 and self.wait >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state["wait"])
