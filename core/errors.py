"""The core's exception family: one base class, mapped once to HTTP by ``service/errors.py``.

Every message is written for the user who sent the spec or the dataset, so each one names
what is wrong *and where* (a spec field path, a dataset row/column, an epoch).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class WeightsmithError(Exception):
    """Base of every error the core raises on purpose."""


class SpecError(WeightsmithError, ValueError):
    """One invalid value in a job spec.

    Parameters
    ----------
    field : str
        The field path, e.g. ``"model.layers[2].units"`` (``""`` for the spec as a whole).
    message : str
        What is wrong, e.g. ``"must be a positive integer, got -3"``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args; ours take other arguments (Celery pickles errors).
        return (type(self), (self.field, self.message))

    def to_dict(self) -> dict[str, str]:
        """The ``{field, message}`` item of a problem+json ``errors`` list."""
        return {"field": self.field, "message": self.message}

    @staticmethod
    def many(errors: Iterable[SpecError]) -> SpecErrors:
        """Bundle several errors so the user sees all of them at once."""
        return SpecErrors(list(errors))


class SpecErrors(SpecError):
    """Several spec errors, collected before raising; ``.errors`` lists them in spec order."""

    def __init__(self, errors: list[SpecError]) -> None:
        flat: list[SpecError] = []
        for err in errors:
            flat.extend(err.errors if isinstance(err, SpecErrors) else [err])
        self.errors: list[SpecError] = flat
        first = flat[0] if flat else SpecError("", "invalid spec")
        super().__init__(first.field, first.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return str(self.errors[0])
        return f"{len(self.errors)} errors: " + "; ".join(str(e) for e in self.errors)


class DatasetError(WeightsmithError, ValueError):
    """A dataset that cannot be parsed or does not fit the spec.

    Parameters
    ----------
    message : str
        Names the row and/or column at fault (rows are 1-based data rows).
    field : str or None
        A spec or request field the error relates to, e.g. ``"target"``.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.field))


class DivergedError(WeightsmithError):
    """Training produced NaN or inf; ``epoch`` is the 1-based epoch where it happened."""

    def __init__(self, epoch: int, message: str) -> None:
        self.epoch = epoch
        self.message = message
        # Messages usually say "at epoch N" already; only prefix the epoch when they do not.
        text = message if f"epoch {epoch}" in message else f"epoch {epoch}: {message}"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.epoch, self.message))


class CheckpointError(WeightsmithError):
    """A checkpoint that cannot be written, read or applied to a model."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
