"""Reading one JSON object of a spec while collecting every error with its field path.

``Section`` wraps a mapping found at ``path`` (``"training"``, ``"model.layers[2]"``) and
offers typed getters that record a :class:`SpecError` and return the default instead of
raising, so one pass over a spec reports all of its mistakes at once.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.errors import SpecError


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def show(value: Any) -> str:
    """A value as the user wrote it in JSON (strings quoted Python-style, as in messages)."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def join(path: str, key: str) -> str:
    """``training`` + ``epochs`` -> ``training.epochs``; the root path is ``""``."""
    return f"{path}.{key}" if path else key


def is_int(value: Any) -> bool:
    """True for JSON integers (and integral floats such as 3.0); booleans are not integers."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def is_number(value: Any) -> bool:
    """True for finite JSON numbers; booleans are not numbers."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(float(value)))


def unknown_key_message(key: str, allowed: Iterable[str]) -> str:
    """``unknown key; did you mean 'epochs'?`` (or the list of the keys allowed)."""
    options = sorted(allowed)
    close = difflib.get_close_matches(str(key), options, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of {options}"


def unknown_name_message(kind: str, name: Any, options: Iterable[str]) -> str:
    """``unknown optimizer 'adamx'; expected one of [...]`` with a close match when there is one."""
    listed = sorted(options)
    text = f"unknown {kind} {show(name)}; expected one of {listed}"
    if isinstance(name, str):
        close = difflib.get_close_matches(name, listed, n=1, cutoff=0.6)
        if close:
            text += f" (did you mean {close[0]!r}?)"
    return text


def interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """Words for a numeric range: ``a positive number``, ``a number in [0, 1)``."""
    if high is None:
        if low is None:
            return "a number"
        if low == 0:
            return "a positive number" if low_open else "a non-negative number"
        return f"a number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a number {'<' if high_open else '<='} {high:g}"
    return (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}")


class Section:
    """One JSON object at ``path``; getters record errors in the shared ``errors`` list."""

    def __init__(self, data: Mapping[str, Any], path: str, errors: list[SpecError]) -> None:
        self.data = data
        self.path = path
        self.errors = errors
        # Better messages for keys users bring from Keras or PyTorch (e.g. "lr").
        self.hints: Mapping[str, str] = {}

    @classmethod
    def of(cls, value: Any, path: str, errors: list[SpecError]) -> Section | None:
        """A Section for ``value`` if it is a JSON object, else None (the error recorded)."""
        if isinstance(value, Mapping):
            return cls(value, path, errors)
        errors.append(SpecError(path or "spec", f"must be a JSON object, got {show(value)}"))
        return None

    def field(self, key: str) -> str:
        return join(self.path, key)

    def error(self, key: str, message: str) -> None:
        self.errors.append(SpecError(self.field(key), message))

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value is None else value

    def check_keys(self, allowed: Iterable[str], hints: Mapping[str, str] | None = None) -> None:
        """Unknown keys are errors; ``hints`` gives a better message for a known mistake."""
        allowed = set(allowed)
        for key in self.data:
            if key not in allowed:
                hint = (hints or {}).get(str(key)) or self.hints.get(str(key))
                self.error(str(key), hint or unknown_key_message(str(key), allowed))

    def integer(self, key: str, default: Any, *, minimum: int | None = None,
                maximum: int | None = None) -> Any:
        """An integer >= ``minimum``; ``default`` MISSING makes the key required."""
        if not self.has(key):
            return self._absent(key, default)
        value = self.data[key]
        ok = is_int(value) and (minimum is None or value >= minimum) \
            and (maximum is None or value <= maximum)
        if ok:
            return int(value)
        if minimum == 1 and maximum is None:
            words = "a positive integer"
        elif minimum == 0 and maximum is None:
            words = "a non-negative integer"
        elif minimum is not None and maximum is not None:
            words = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            words = f"an integer >= {minimum}"
        else:
            words = "an integer"
        self.error(key, f"must be {words}, got {show(value)}")
        return None if default is MISSING else default

    def number(self, key: str, default: Any, *, low: float | None = None,
               high: float | None = None, low_open: bool = False,
               high_open: bool = False) -> Any:
        """A finite number in the given range, as a float."""
        if not self.has(key):
            return self._absent(key, default)
        value = self.data[key]
        if is_number(value):
            x = float(value)
            above = low is None or (x > low if low_open else x >= low)
            below = high is None or (x < high if high_open else x <= high)
            if above and below:
                return x
        self.error(key, f"must be {interval(low, high, low_open, high_open)}, got {show(value)}")
        return None if default is MISSING else default

    def boolean(self, key: str, default: Any) -> Any:
        if not self.has(key):
            return self._absent(key, default)
        value = self.data[key]
        if isinstance(value, bool):
            return value
        self.error(key, f"must be true or false, got {show(value)}")
        return None if default is MISSING else default

    def choice(self, key: str, default: Any, options: Sequence[str]) -> Any:
        if not self.has(key):
            return self._absent(key, default)
        value = self.data[key]
        if isinstance(value, str) and value in options:
            return value
        self.error(key, f"must be one of {list(options)}, got {show(value)}")
        return None if default is MISSING else default

    def string(self, key: str, default: Any, *, max_length: int = 200) -> Any:
        if not self.has(key):
            return self._absent(key, default)
        value = self.data[key]
        if isinstance(value, str) and 0 < len(value) <= max_length:
            return value
        self.error(key, f"must be a non-empty string of at most {max_length} characters, "
                   f"got {show(value)}")
        return None if default is MISSING else default

    def _absent(self, key: str, default: Any) -> Any:
        if default is MISSING:
            self.error(key, "is required")
            return None
        return default
