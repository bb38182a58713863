"""The four distributions a sweep parameter draws from, as a registry.

Each one maps a uniform draw ``u`` in [0, 1) to a value (so sampling is a pure function of
the draws, core.sweeps.search), lists its corners (each bound, each choice) for the dry run,
says which field kinds it fits, and describes itself library-neutrally for TPE
(``sampler_range``: ``"float"``, ``"int"`` or ``"categorical"`` with its arguments).
Bounds are inclusive.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from core.errors import SpecError
from core.spec.fields import is_int, is_number, show
from core.spec.params import Param


class Distribution(ABC):
    """One parameter's distribution; ``key`` is its JSON name."""

    key: ClassVar[str]
    #: the Param kinds whose values it can produce ("custom" only for null-by-default fields)
    kinds: ClassVar[frozenset[str]]

    @classmethod
    @abstractmethod
    def parse(cls, raw: Any, field: str) -> Distribution:
        """From the JSON value under ``key``; SpecError at ``field`` if it is malformed."""

    @abstractmethod
    def corners(self) -> tuple[Any, ...]:
        """The values the dry run must accept: each bound, or each choice."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """The value for a uniform draw ``u`` in [0, 1)."""

    @abstractmethod
    def sampler_range(self) -> tuple[str, dict[str, Any]]:
        """(``"float" | "int" | "categorical"``, its arguments) for a sampling library."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``{key: value}``."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distribution) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()[self.key]!r})"

    def grid(self) -> tuple[Any, ...] | None:
        """The values a grid search walks, or None if it cannot enumerate them."""
        return None

    def misfit(self, param: Param) -> str | None:
        """Why this distribution cannot give values of ``param``, or None if it can."""
        if param.kind not in self.kinds and not (
                param.kind == "custom" and param.default is None and "number" in self.kinds):
            return f"{self.key} cannot give values of a {_kind_words(param)} field"
        return None


#: values one ``choice`` may list: each is a corner the dry run checks when the sweep is submitted
MAX_CHOICES = 256


class Choice(Distribution):
    """One of a list of values, equally likely."""

    key = "choice"
    kinds = frozenset({"number", "integer", "boolean", "choice", "string", "custom"})

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    @classmethod
    def parse(cls, raw: Any, field: str) -> Choice:
        if not isinstance(raw, list) or not raw:
            raise SpecError(field, f"choice must be a non-empty list of values, got {show(raw)}")
        if len(raw) > MAX_CHOICES:
            raise SpecError(field, f"choice lists {len(raw)} values; at most {MAX_CHOICES}")
        seen = [json.dumps(v, sort_keys=True) for v in raw]
        if len(set(seen)) != len(seen):
            raise SpecError(field, "choice lists a value twice")
        return cls(tuple(raw))

    def corners(self) -> tuple[Any, ...]:
        return self.values

    def from_unit(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def sampler_range(self) -> tuple[str, dict[str, Any]]:
        return "categorical", {"choices": self.values}

    def to_dict(self) -> dict[str, Any]:
        return {self.key: list(self.values)}

    def grid(self) -> tuple[Any, ...]:
        return self.values

    def misfit(self, param: Param) -> str | None:
        if param.kind == "boolean":
            bad = [v for v in self.values if not isinstance(v, bool)]
        elif param.kind == "choice" and param.choices:
            bad = [v for v in self.values if v not in param.choices]
        else:
            return None  # numbers, strings, objects: the corner check runs the parser on each
        if bad:
            return f"choice {show(bad[0])} is not {param.allowed()}"
        return None


class _Range(Distribution):
    """A closed interval ``[low, high]``."""

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    @classmethod
    def _bound_ok(cls, x: Any) -> bool:
        return is_number(x)

    @classmethod
    def parse(cls, raw: Any, field: str) -> _Range:
        if not (isinstance(raw, list) and len(raw) == 2 and all(cls._bound_ok(x) for x in raw)):
            raise SpecError(field, f"{cls.key} must be [low, high] of {cls._words()}, "
                            f"got {show(raw)}")
        low, high = raw
        if low > high:
            raise SpecError(field, f"{cls.key} [{show(low)}, {show(high)}] is an empty range "
                            "(low > high)")
        return cls(low, high)

    @classmethod
    def _words(cls) -> str:
        return "finite numbers"

    def corners(self) -> tuple[Any, ...]:
        return (self.low,) if self.low == self.high else (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {self.key: [self.low, self.high]}

    def misfit(self, param: Param) -> str | None:
        reason = super().misfit(param)
        if reason is not None or param.kind not in ("number", "integer"):
            return reason
        low_ok = param.low is None or (self.low > param.low if param.low_open
                                       else self.low >= param.low)
        high_ok = param.high is None or (self.high < param.high if param.high_open
                                         else self.high <= param.high)
        if low_ok and high_ok:
            return None
        return (f"{self.key} [{show(self.low)}, {show(self.high)}] reaches outside the "
                f"field's values: {param.allowed()}")


class Uniform(_Range):
    """A float, uniform on ``[low, high]``."""

    key = "uniform"
    kinds = frozenset({"number"})

    def from_unit(self, u: float) -> float:
        return float(self.low + u * (self.high - self.low))

    def sampler_range(self) -> tuple[str, dict[str, Any]]:
        return "float", {"low": float(self.low), "high": float(self.high), "log": False}


class LogUniform(_Range):
    """A float whose logarithm is uniform on ``[log low, log high]`` (low > 0)."""

    key = "log_uniform"
    kinds = frozenset({"number"})

    @classmethod
    def _bound_ok(cls, x: Any) -> bool:
        return is_number(x) and x > 0

    @classmethod
    def _words(cls) -> str:
        return "positive finite numbers"

    def from_unit(self, u: float) -> float:
        # low * (high/low)**u: exactly low at u = 0; clamped against rounding at the top
        return min(float(self.low) * math.exp(u * math.log(self.high / self.low)),
                   float(self.high))

    def sampler_range(self) -> tuple[str, dict[str, Any]]:
        return "float", {"low": float(self.low), "high": float(self.high), "log": True}


class IntUniform(_Range):
    """An integer, each of ``low, low + 1, ..., high`` equally likely."""

    key = "int_uniform"
    kinds = frozenset({"integer", "number"})

    @classmethod
    def _bound_ok(cls, x: Any) -> bool:
        return is_int(x)

    @classmethod
    def _words(cls) -> str:
        return "integers"

    def from_unit(self, u: float) -> int:
        span = int(self.high) - int(self.low)
        return int(self.low) + min(int(u * (span + 1)), span)

    def sampler_range(self) -> tuple[str, dict[str, Any]]:
        return "int", {"low": int(self.low), "high": int(self.high)}


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.key: cls for cls in (Choice, Uniform, LogUniform, IntUniform)
}


def _kind_words(param: Param) -> str:
    if param.kind == "custom":
        return "structured (object or list)" if param.default is not None else "free"
    return {"number": "number", "integer": "integer", "boolean": "true/false",
            "choice": "named-choice", "string": "string"}[param.kind]
