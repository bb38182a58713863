"""Paths into a job spec: ``"model.layers[0].units"`` read, written and matched to a field.

A path is dot-separated keys, each optionally followed by ``[i]`` list indices. Writing
follows the raw spec the user sent (no defaults filled), creating missing objects on the way,
so an applied parameter is exactly what a hand-written job spec would say.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from core.errors import SpecError

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")

Step = str | int


def parse_path(path: str, field: str) -> tuple[Step, ...]:
    """``"model.layers[0].units"`` -> ``("model", "layers", 0, "units")``.

    Raises SpecError at ``field`` if the path is not dotted keys with list indices.
    """
    steps: list[Step] = []
    for part in path.split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise SpecError(field, f"is not a path of dotted keys with [i] list indices "
                            f"(e.g. \"model.layers[0].units\"), got {path!r}")
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(steps)


def lookup(data: Any, steps: tuple[Step, ...]) -> tuple[bool, Any]:
    """(found, value) of ``steps`` in nested dicts and lists."""
    node = data
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return False, None
            node = node[step]
        else:
            if not isinstance(node, Mapping) or step not in node:
                return False, None
            node = node[step]
    return True, node


def assign(spec: Mapping[str, Any], values: Mapping[tuple[Step, ...], Any]) -> dict[str, Any]:
    """A deep copy of ``spec`` with each path set to its value (objects made as needed).

    A list index must exist: a sweep changes a layer's field, it does not invent layers.
    """
    out: dict[str, Any] = copy.deepcopy(dict(spec))
    for steps, value in values.items():
        node: Any = out
        for i, step in enumerate(steps[:-1]):
            nxt = steps[i + 1]
            if isinstance(step, int):
                node = node[step]
            else:
                if not isinstance(node.get(step), (dict, list)):
                    node[step] = [] if isinstance(nxt, int) else {}
                node = node[step]
        node[steps[-1]] = copy.deepcopy(value)
    return out
