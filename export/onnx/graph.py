"""A small builder of one ONNX graph: nodes and float32 initializers with readable names.

Every value is named after where it comes from (``layers.2.gemm``, ``layers.2.weight``,
``input.standardized``), so a model viewer such as Netron shows the network as the spec wrote
it. The exporters of ``export.onnx.layers`` and ``export.onnx.activations`` only call
:meth:`Graph.op` and :meth:`Graph.constant`; the model builder owns the scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import helper, numpy_helper

# The exported model computes in float32 whatever the run dtype: what ONNX runtimes serve.
DTYPE = np.float32


class Graph:
    """The nodes and initializers of a graph under construction, for one ``opset``."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._scope = "graph"

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Name what is added inside the block ``name.<what>`` (e.g. ``layers.0``)."""
        outer, self._scope = self._scope, name
        try:
            yield
        finally:
            self._scope = outer

    def _fresh(self, what: str) -> str:
        base = f"{self._scope}.{what}"
        name, n = base, 1
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def constant(self, what: str, value: ArrayLike, dtype: Any = DTYPE) -> str:
        """A named initializer holding ``value`` (float32 unless ``dtype`` says otherwise)."""
        name = self._fresh(what)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """Add one node of the default domain; returns the name of its (single) output."""
        output = self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output,
                                           **attributes))
        return output

    def output_as(self, value: str, name: str) -> None:
        """Make the graph output ``name`` the value ``value`` (an Identity node)."""
        self._names.add(name)
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
