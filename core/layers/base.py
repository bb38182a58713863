"""The layer contract every layer of the network follows, and its small shared helpers.

A layer is built once for an input shape (without the batch dimension), then runs
``forward(x, training)`` and ``backward(dy)`` on batches. Trainable arrays live in ``params``
with same-keyed gradients in ``grads``; non-trainable state lives in ``buffers``. After
building, the Network swaps every ``params``/``grads`` entry for a view into one flat array,
so layers always read ``self.params[...]`` at call time and write gradients in place.

Buffer rules that keep the hot path allocation-free:
- ``forward`` never modifies its input; it may return one of its own scratch arrays, valid
  until the layer's next forward on a batch of the same size.
- ``backward`` may overwrite ``dy`` (it is the next layer's scratch or the loss gradient).
- ``needs_input_grad = False`` (set by the Network on the first layer with parameters) makes
  ``backward`` skip the input gradient and return ``None``: nobody needs dL/dX.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

Array = NDArray[Any]
Shape = tuple[int, ...]

_MAX_SCRATCH = 48


def spec_field(spec: Any, name: str, default: Any = None) -> Any:
    """A layer spec's field, whether the spec is a dataclass, an object or a plain dict."""
    value = spec.get(name, default) if isinstance(spec, dict) else getattr(spec, name, default)
    return default if value is None else value


class Layer(ABC):
    """Base class: holds params/grads/buffers dicts and per-shape scratch arrays."""

    type_name: ClassVar[str] = ""
    # Parameters the L1/L2 penalty applies to (weights, not biases or norm scales).
    penalized: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()
        self.dtype: np.dtype[Any] = np.dtype(np.float32)
        self.needs_input_grad = True
        self._scratch: dict[tuple[str, Shape], Array] = {}

    @classmethod
    def from_spec(cls, spec: Any) -> Layer:
        """Build an unbuilt layer from its spec (a core.spec.layers dataclass, or a dict)."""
        return cls()

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        """Allocate parameters for ``input_shape`` (no batch dim); return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self._build(self.input_shape, rng)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return self.output_shape

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return input_shape

    @abstractmethod
    def forward(self, x: Array, training: bool) -> Array:
        """(N, *input_shape) -> (N, *output_shape)."""

    @abstractmethod
    def backward(self, dy: Array) -> Array | None:
        """dL/dy (N, *output_shape) -> dL/dx (N, *input_shape); sets ``grads`` in place."""

    def scratch(self, key: str, shape: Shape, zero: bool = False,
                dtype: DTypeLike | None = None) -> Array:
        """An array of ``shape`` in the layer dtype (or ``dtype``: masks, indices), reused
        across batches.

        Uninitialised, or zero-filled when first allocated if ``zero`` (for buffers whose
        border or padding the layer never writes again).
        """
        slot = (key, shape)
        array = self._scratch.get(slot)
        if array is None:
            if len(self._scratch) >= _MAX_SCRATCH:
                # Many batch sizes (predict, a ragged last batch): start over, keep it bounded.
                self._scratch.clear()
            dtype = self.dtype if dtype is None else dtype
            array = np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype)
            self._scratch[slot] = array
        return array

    def writable(self, dy: Array) -> Array | None:
        """``dy`` itself when it may be overwritten in place, else ``None`` (allocate)."""
        ok = dy.flags.writeable and dy.dtype == self.dtype and dy.flags.c_contiguous
        return dy if ok else None
