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

Memory order: shapes are always NCHW (or (N, F)), but a 4-D array a layer returns (forward's
output, backward's input gradient) is either C-contiguous or *channel-major*: the NCHW view
``a.transpose(1, 0, 2, 3)`` of a C-contiguous (C, N, H, W) array (see ``channel_major``).
Conv2D returns channel-major arrays (its GEMM's own layout) and the pooling layers return
arrays in their input's order, so conv -> pool -> conv copies nothing across images; every
layer accepts either order (any strides, in fact). Element-wise work gives the same bits in
either order. A reduction's summation order follows memory order, so the layers that reduce
over a 4-D input (BatchNorm, LayerNorm; Flatten for the Dense after it) first copy a
channel-major input into C order (``contiguous``), and the Network hands the loss (and
every caller of ``forward``) a C-contiguous output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

Array = NDArray[Any]
Shape = tuple[int, ...]

_MAX_SCRATCH = 48


def channel_major(x: Array) -> bool:
    """Whether ``x`` (N, C, H, W) is the NCHW view of a C-contiguous (C, N, H, W) array.

    False for a C-contiguous ``x`` (with N or C of 1 both orders are the same memory).
    """
    return (x.ndim == 4 and not x.flags.c_contiguous
            and x.transpose(1, 0, 2, 3).flags.c_contiguous)


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
                dtype: DTypeLike | None = None,
                init: Callable[[Array], object] | None = None) -> Array:
        """An array of ``shape`` in the layer dtype (or ``dtype``: masks, indices), reused
        across batches.

        Uninitialised, or zero-filled when first allocated if ``zero`` (for buffers whose
        border or padding the layer never writes again), or filled by ``init(array)`` when
        first allocated (for contents fixed by the shape, such as indices).
        """
        slot = (key, shape)
        array = self._scratch.get(slot)
        if array is None:
            if len(self._scratch) >= _MAX_SCRATCH:
                # Many batch sizes (predict, a ragged last batch): start over, keep it bounded.
                self._scratch.clear()
            dtype = self.dtype if dtype is None else dtype
            array = np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype)
            if init is not None:
                init(array)
            self._scratch[slot] = array
        return array

    def scratch_like(self, key: str, like: Array, shape: Shape | None = None) -> Array:
        """A scratch array of ``shape`` (default: ``like``'s) in ``like``'s memory order:
        channel-major when ``like`` is (see ``channel_major``), else C order."""
        shape = like.shape if shape is None else shape
        if not channel_major(like):
            return self.scratch(key, shape)
        n, c, h, w = shape
        return self.scratch(key, (c, n, h, w)).transpose(1, 0, 2, 3)

    def contiguous(self, key: str, x: Array) -> Array:
        """``x`` itself when C-contiguous, else its copy in a C-ordered scratch array: for
        reductions, whose summation order follows memory order."""
        if x.flags.c_contiguous:
            return x
        out = self.scratch(key, x.shape)
        np.copyto(out, x)
        return out

    def writable(self, dy: Array) -> Array | None:
        """``dy`` itself when it may be overwritten in place, else ``None`` (allocate).

        A layer's own dense scratch (C-contiguous or channel-major) qualifies; an arbitrary
        strided view (which may overlap itself or another array) does not.
        """
        dense = dy.flags.c_contiguous or channel_major(dy)
        ok = dy.flags.writeable and dy.dtype == self.dtype and dense
        return dy if ok else None
