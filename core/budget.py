"""Resource budgets: a job's estimated memory and work checked before any of it is done.

The figures come from the dry run (:func:`core.dryrun.dry_run`), so nothing is allocated to
find out that something is too big. A job is checked for

- layers per model (before the spec is even parsed: a 34 MB spec of 10^6 layers took 11 s
  of API CPU to validate), and trainable parameters;
- training memory: the dry run's ``memory_bytes`` (parameters, gradients, optimizer state,
  one batch's activations and their gradients) plus ``data_bytes`` (the training arrays);
- FLOPs per epoch (forward and backward over the training rows, forward over the validation
  rows).

A refusal is a :class:`BudgetError` (a SpecError: a 422 at the API, a permanent failure in
the worker) naming the layer that takes most of the budget, the estimate and the limit.
Inference (predict) is checked the same way for one batch's activations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import SpecError

# Arrays per layer output that inference keeps alive at once: the output itself and the
# layer's scratch of the same size (im2col columns, a pre-activation, a mask).
INFERENCE_ARRAYS_PER_OUTPUT = 2


class BudgetError(SpecError):
    """A job or request whose estimate exceeds a budget; ``field`` names the largest part."""


@dataclass(frozen=True)
class Budget:
    """The limits a job is checked against (the service and worker fill it from settings)."""

    max_layers: int
    max_params: int
    max_memory_bytes: int
    max_flops_per_epoch: int

    @classmethod
    def of(cls, limits: Any) -> Budget:
        """From the service's settings (``config.settings.Limits``, read by attribute: the
        core imports nothing outside NumPy and the standard library)."""
        return cls(int(limits.max_layers), int(limits.max_model_params),
                   int(limits.max_training_memory_bytes), int(limits.max_flops_per_epoch))


def show_bytes(n: float) -> str:
    """``2971054132`` -> ``"2,971,054,132 bytes (2.77 GiB)"``: exact, and readable."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size  # 3 significant digits, but 1013 KiB rather than 1.01e+03
            shown = f"{value:.0f}" if value >= 999.5 else f"{value:.3g}"
            return f"{int(n):,} bytes ({shown} {unit})"
    return f"{int(n):,} bytes"


def layer_field(index: int) -> str:
    return f"model.layers[{index}]"


def check_layer_count(n_layers: int, budget: Budget) -> None:
    if n_layers > budget.max_layers:
        raise BudgetError("model.layers",
                          f"{n_layers:,} layers; a model has at most {budget.max_layers:,}")


def _largest(values: Sequence[float]) -> int:
    return int(np.argmax(values)) if len(values) else 0


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory in bytes: the dry run's whole estimate, the training data's share of
    it, and ``layers[i]``, layer i's share."""

    total: int
    data: int
    layers: tuple[int, ...]
    batch_rows: int


def training_memory(report: Mapping[str, Any], itemsize: int) -> MemoryEstimate:
    """Split the dry run's estimate by layer.

    The whole is the dry run's ``memory_bytes`` (parameters, gradients, optimizer state,
    every layer's arrays for each batch size the run meets, the data and its batch buffers). A
    layer's share is its arrays for one training batch (the dry run's per-layer
    ``memory_bytes``; without one, its output and that output's gradient) plus a part of the
    rest, less the data (``data_bytes``), in proportion to the layer's parameter bytes and
    arrays.
    """
    layers = report["layers"]
    batch = int(report["batch_size"])
    activations = [
        int(layer["memory_bytes"]) if layer.get("memory_bytes") is not None
        else 2 * batch * math.prod(layer["output_shape"]) * itemsize
        for layer in layers
    ]
    total, data = int(report["memory_bytes"]), int(report["data_bytes"])
    rest = max(total - data - sum(activations), 0)
    weights = [int(layer["params"]) * itemsize + a
               for a, layer in zip(activations, layers, strict=True)]
    scale = rest / max(sum(weights), 1)
    shares = tuple(a + round(w * scale) for a, w in zip(activations, weights, strict=True))
    return MemoryEstimate(total, data, shares, batch)


def training_errors(report: Mapping[str, Any], itemsize: int,
                    budget: Budget) -> list[BudgetError]:
    """Every budget the dry run `report` of a job exceeds, as errors naming a field."""
    errors: list[BudgetError] = []
    layers = report["layers"]
    if len(layers) > budget.max_layers:
        errors.append(BudgetError("model.layers", f"{len(layers):,} layers; a model has at "
                                  f"most {budget.max_layers:,}"))
    params = int(report["total_params"])
    if params > budget.max_params:
        i = _largest([layer["params"] for layer in layers])
        errors.append(BudgetError(layer_field(i), (
            f"the model has {params:,} parameters, {int(layers[i]['params']):,} of them in "
            f"this layer ({layers[i]['type']}); the limit is {budget.max_params:,}")))
    memory = training_memory(report, itemsize)
    if memory.total > budget.max_memory_bytes:
        i = _largest(memory.layers)
        field, part = layer_field(i), (
            f"{show_bytes(memory.layers[i])} of it for layer {i} ({layers[i]['type']}) with a "
            f"batch of {memory.batch_rows:,}")
        if memory.data > memory.layers[i]:
            field, part = "dataset", f"{show_bytes(memory.data)} of it for the data"
        errors.append(BudgetError(field, (
            f"training needs an estimated {show_bytes(memory.total)} of memory ({part}); "
            f"the limit is {show_bytes(budget.max_memory_bytes)}")))
    flops = int(report["flops_per_epoch"])
    if flops > budget.max_flops_per_epoch:
        i = _largest([layer["flops"] for layer in layers])
        errors.append(BudgetError(layer_field(i), (
            f"an epoch needs an estimated {flops:.3g} FLOPs (layer {i} ({layers[i]['type']}): "
            f"{int(layers[i]['flops']):.3g} per row forward); the limit is "
            f"{budget.max_flops_per_epoch:.3g} per epoch")))
    return errors


def check_training(report: Mapping[str, Any], itemsize: int, budget: Budget) -> None:
    """Raise a BudgetError (several: SpecErrors) when the job does not fit `budget`."""
    errors = training_errors(report, itemsize, budget)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecError.many(errors)


def check_job(spec: Any, report: Mapping[str, Any], budget: Budget) -> MemoryEstimate:
    """Check a job (its Spec and dry run `report`) against `budget`; its training memory."""
    itemsize = np.dtype(spec.training.dtype).itemsize
    check_training(report, itemsize, budget)
    return training_memory(report, itemsize)


def inference_memory(input_shape: Sequence[int], output_shapes: Iterable[Sequence[int]],
                     rows: int, itemsize: int) -> list[int]:
    """Bytes of each layer's activations (outputs and scratch) for a forward of `rows` rows;
    the input's own bytes are added to the first layer's."""
    sizes = [math.prod(shape) for shape in output_shapes]
    per_layer = [rows * INFERENCE_ARRAYS_PER_OUTPUT * n * itemsize for n in sizes]
    if per_layer:
        per_layer[0] += rows * math.prod(input_shape) * itemsize
    return per_layer


def inference_error(per_layer: Sequence[int], rows: int, limit: int,
                    layer_types: Sequence[str]) -> str | None:
    """The message refusing a forward pass over `rows` rows, or None if it fits `limit`."""
    total = sum(per_layer)
    if total <= limit:
        return None
    i = _largest(per_layer)
    return (f"a batch of {rows:,} rows needs an estimated {show_bytes(total)} of activations "
            f"({show_bytes(per_layer[i])} for layer {i} ({layer_types[i]})); the limit is "
            f"{show_bytes(limit)}")


def array_bytes(objects: Iterable[Any]) -> int:
    """Bytes of the distinct NumPy buffers reachable from `objects` (their attributes, and
    the values of dicts among them): views are counted once, with the array they view."""
    seen: dict[int, int] = {}
    visited: set[int] = set()
    pending = list(objects)
    while pending:
        item = pending.pop()
        if id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, np.ndarray):
            base = item
            while isinstance(base.base, np.ndarray):
                base = base.base
            seen[id(base)] = int(base.nbytes)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(v for v in item if isinstance(v, np.ndarray | dict))
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            pending.extend(v for v in vars(item).values()
                           if isinstance(v, np.ndarray | dict | list | tuple))
    return sum(seen.values())


def network_bytes(network: Any) -> int:
    """Bytes a loaded :class:`core.network.Network` holds: parameters, gradients, buffers,
    and the scratch its layers keep from their last forward pass."""
    return array_bytes([network, network.preprocessing, *network.layers])
