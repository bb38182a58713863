"""One field of a spec object, declared once: the parser, the JSON Schema and the docs read it.

A registry entry (an optimizer, a layer type, a schedule, a spec section) lists its fields as
``Param`` values. :meth:`Param.read` checks a value through :class:`~core.spec.fields.Section`
(so every error names the field), :meth:`Param.json_schema` describes the same rule in JSON
Schema 2020-12, and :meth:`Param.allowed` in words for ``docs/spec.md``. A rule written
here is therefore written once: change a bound and the parser, ``/openapi.json`` and the
reference change with it.

Fields whose shape no single kind covers (``kernel_size``: an int or a pair; ``batch_size``:
an int or ``"full"``; an activation or initializer object) are ``kind="custom"``: they carry
their own ``reader`` and ``schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import SpecError
from core.spec.fields import MISSING, Section, interval

Kind = Literal["number", "integer", "boolean", "choice", "string", "custom"]
Reader = Callable[[Section, "Param"], Any]


@dataclass(frozen=True)
class Param:
    """A field: its JSON key, kind, default and allowed values.

    ``default`` MISSING makes the key required; None means "optional, absent unless given"
    (and the schema admits ``null``). Bounds apply to ``number`` and ``integer``;
    ``choices`` to ``choice``. ``doc`` is one sentence for the reference; ``example`` a value
    for it when the default is not a good one.
    """

    name: str
    kind: Kind
    default: Any = MISSING
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    doc: str = ""
    example: Any = None
    max_length: int = 200
    reader: Reader | None = field(default=None, compare=False)
    schema: Mapping[str, Any] | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def read(self, s: Section, default: Any = MISSING) -> Any:
        """The value of this field in ``s`` (errors recorded in ``s``), or the default.

        ``default`` overrides the declared one where it depends on other fields (a monitor
        that defaults to ``val_loss`` only when there is a validation split).
        """
        dflt = self.default if default is MISSING else default
        if self.kind == "custom":
            assert self.reader is not None, f"custom param {self.name} has no reader"
            return self.reader(s, self)
        if self.kind == "number":
            return s.number(self.name, dflt, low=self.low, high=self.high,
                            low_open=self.low_open, high_open=self.high_open)
        if self.kind == "integer":
            return s.integer(self.name, dflt,
                             minimum=None if self.low is None else int(self.low),
                             maximum=None if self.high is None else int(self.high))
        if self.kind == "boolean":
            return s.boolean(self.name, dflt)
        if self.kind == "choice":
            return s.choice(self.name, dflt, self.choices)
        return s.string(self.name, dflt, max_length=self.max_length)

    def json_schema(self) -> dict[str, Any]:
        """This field's rule as a JSON Schema 2020-12 object (with its default and doc)."""
        if self.kind == "custom":
            out = dict(self.schema or {})
        elif self.kind == "choice":
            out = {"enum": list(self.choices)}
        elif self.kind == "string":
            out = {"type": "string", "minLength": 1, "maxLength": self.max_length}
        else:
            out = {"type": self.kind}
            if self.low is not None:
                out["exclusiveMinimum" if self.low_open else "minimum"] = _num(self.low)
            if self.high is not None:
                out["exclusiveMaximum" if self.high_open else "maximum"] = _num(self.high)
        if self.default is None and not self.required:
            out = {"anyOf": [out, {"type": "null"}]}
        if not self.required:
            out["default"] = self.default
        if self.doc:
            out["description"] = self.doc
        return out

    def allowed(self) -> str:
        """The allowed values in words: ``a number in [0, 1)``, ``one of "rel", "abs"``."""
        if self.kind == "custom":
            return str((self.schema or {}).get("x-allowed", "see below"))
        if self.kind == "number":
            return interval(self.low, self.high, self.low_open, self.high_open)
        if self.kind == "integer":
            low = None if self.low is None else int(self.low)
            high = None if self.high is None else int(self.high)
            if high is None:
                return {None: "an integer", 0: "an integer >= 0",
                        1: "a positive integer"}.get(low, f"an integer >= {low}")
            return f"an integer in [{low}, {high}]"
        if self.kind == "boolean":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' if isinstance(c, str) else str(c)
                                         for c in self.choices)
        return f"a string of 1 to {self.max_length} characters"


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def object_schema(params: tuple[Param, ...] | list[Param], *, title: str = "",
                  description: str = "", extra: Mapping[str, Any] | None = None,
                  ) -> dict[str, Any]:
    """A closed JSON object of ``params`` (unknown keys are errors, as in the parser)."""
    out: dict[str, Any] = {"type": "object",
                           "properties": {p.name: p.json_schema() for p in params},
                           "additionalProperties": False}
    required = [p.name for p in params if p.required]
    if required:
        out["required"] = required
    if title:
        out["title"] = title
    if description:
        out["description"] = description
    if extra:
        out["properties"].update(extra)
    return out


def defaults(params: tuple[Param, ...] | list[Param]) -> dict[str, Any]:
    """``{name: default}`` of the params that have one (required ones left out)."""
    return {p.name: p.default for p in params if not p.required}


def check_values(params: tuple[Param, ...] | list[Param], values: Mapping[str, Any],
                 path: str) -> dict[str, Any]:
    """``values`` read through ``params`` (None or absent: the default) for a Python caller.

    The rule a constructor applies is the one the spec parser applies: a bad value raises the
    same :class:`~core.errors.SpecError` (every bad field at once, each named ``path.<name>``).
    A name no param declares is a programming error, a ``TypeError`` as for any keyword.
    """
    unknown = sorted(set(values) - {p.name for p in params})
    if unknown:
        raise TypeError(f"{path} takes no argument {unknown[0]!r}; "
                        f"it takes {[p.name for p in params]}")
    errors: list[SpecError] = []
    section = Section(values, path, errors)
    out = {p.name: p.read(section) for p in params}
    if errors:
        raise errors[0] if len(errors) == 1 else SpecError.many(errors)
    return out
