"""The metrics a run can watch, and which way each one improves: the one owner of that rule.

Early stopping, the "best" checkpoint, ``reduce_on_plateau``'s default mode and the choice
of a job's best checkpoint all read :func:`direction`: accuracies improve upwards, losses
(and anything else) downwards, as Keras's ``mode="auto"`` decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Direction = Literal["min", "max"]
MONITORS = ("loss", "val_loss", "accuracy", "val_accuracy")


def direction(monitor: str) -> Direction:
    """``"max"`` when a higher ``monitor`` is better (accuracies), else ``"min"``."""
    return "max" if monitor.endswith("accuracy") else "min"


def resolve_mode(monitor: str, mode: str | None = "auto") -> Direction:
    """``mode`` when it is "min" or "max"; for "auto" (or None), :func:`direction`."""
    if mode == "min":
        return "min"
    if mode == "max":
        return "max"
    return direction(monitor)


def monitored_value(metrics: Mapping[str, Any], monitor: str) -> float | None:
    """The metric's value; ``val_x`` falls back to ``x`` when the run has no validation split.

    Returns None when neither is there (e.g. accuracy of a regression run).
    """
    if monitor in metrics:
        return metrics[monitor]  # type: ignore[no-any-return]
    if monitor.startswith("val_") and monitor[4:] in metrics:
        return metrics[monitor[4:]]  # type: ignore[no-any-return]
    return None


def score(metrics: Mapping[str, Any] | None, monitor: str) -> float | None:
    """The monitored value as a number to rank by (lower is better), None if not finite.

    Stored metrics turn NaN and inf into null (JSON), so ranking skips every non-finite
    value: a checkpoint ranks the same in memory and in the database.
    """
    value: Any = monitored_value(metrics or {}, monitor)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if direction(monitor) == "min" else -float(value)
