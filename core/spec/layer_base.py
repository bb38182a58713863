"""The base of every layer spec: parsing from declared fields, and the dry run's answers.

``core.spec.layers`` holds one subclass per layer type and the ``LAYER_SPECS`` registry.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import DTypeLike

from core.activations import ACTIVATIONS
from core.errors import SpecError
from core.spec.fields import Section
from core.spec.functions import ActivationFn, InitFn
from core.spec.params import Param

Shape = tuple[int, ...]


def declared(params: tuple[Param, ...], name: str) -> Any:
    """The declared default of field ``name``: a dataclass default read from its Param."""
    return next(p.default for p in params if p.name == name)


class LayerSpec:
    """Base of every layer spec: parsing from the declared fields, and the dry run's answers.

    Class attributes (registry metadata): ``type`` (the JSON name), ``spec_params`` (its
    fields beside ``type``, in documentation order), ``input_ranks`` (1 for (F,) samples,
    3 for (C, H, W)), ``flat_output`` (its output is always (F,)), ``key_hints`` (a better
    message for a key users bring from Keras or PyTorch). Subclasses override the
    methods below that differ from "no parameters, output shape = input shape, free".
    """

    type: ClassVar[str]
    spec_params: ClassVar[tuple[Param, ...]] = ()
    input_ranks: ClassVar[tuple[int, ...]] = (1, 3)
    flat_output: ClassVar[bool] = False
    key_hints: ClassVar[dict[str, str]] = {}

    @classmethod
    def parse(cls, s: Section) -> Self:
        """The layer at ``s`` (its ``type`` already checked); errors are recorded in ``s``."""
        s.check_keys(("type", *(p.name for p in cls.spec_params)), cls.key_hints)
        values = {p.name: p.read(s) for p in cls.spec_params}
        cls.check(s, values)
        return cls(**values)

    @classmethod
    def check(cls, s: Section, values: dict[str, Any]) -> None:
        """Rules between this layer's own fields (record errors in ``s``)."""

    @classmethod
    def preserves_shape(cls) -> bool:
        """True when the output always has the input's shape (dropout, norms, activation)."""
        return not cls.flat_output and cls._output_shape is LayerSpec._output_shape

    def output_shape(self, shape: Shape, path: str) -> Shape:
        """The output shape of one sample for input ``shape``; SpecError at ``path`` if none."""
        if len(shape) not in self.input_ranks:
            wanted = "flat (features,)" if self.input_ranks == (1,) else "(C, H, W)"
            hint = "; add a flatten layer before it" if self.input_ranks == (1,) else ""
            raise SpecError(path, f"{self.type} needs {wanted} inputs but gets {shape}{hint}")
        return self._output_shape(shape, path)

    def _output_shape(self, shape: Shape, path: str) -> Shape:
        return shape

    def param_count(self, in_shape: Shape) -> int:
        """Trainable scalars for input ``in_shape`` (running statistics are buffers)."""
        return 0

    def flops(self, in_shape: Shape, out_shape: Shape) -> int:
        """Forward FLOPs for one sample (a multiply-add counts 2)."""
        return 0

    def held_values(self, in_shape: Shape, out_shape: Shape) -> int:
        """Values (of the run's dtype) the layer holds per batch row at its peak in training.

        Its output, what it caches for backward, its input gradient and its scratch
        (core/layers keeps these per batch size); an upper estimate, summed over the arrays
        even where a temporary is freed before the next is made.
        """
        return 0

    def memory_bytes(self, in_shape: Shape, out_shape: Shape, batch: int,
                     dtype: DTypeLike) -> int:
        """Bytes this layer holds for one training batch of ``batch`` rows in ``dtype``."""
        return batch * self.held_values(in_shape, out_shape) * np.dtype(dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this layer, every default filled."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, ActivationFn | InitFn):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def activation_flops(activation: ActivationFn, values: int) -> int:
    return values * ACTIVATIONS[activation.type].flops_per_value


def activation_work(activation: ActivationFn, values: int) -> int:
    return values * ACTIVATIONS[activation.type].work_arrays
