"""The dry run behind ``POST /v1/jobs:validate``: shapes, parameters, FLOPs and memory.

Nothing is allocated: every figure comes from the spec and the input shape, and each layer
spec answers its own (``core.spec.layers.LayerSpec``). FLOPs count a multiply-add as 2; an
epoch is forward + backward (about 3x the forward cost) over the training rows plus one
forward pass over the validation rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.batching import FIT_CHUNK_ROWS
from core.metrics import EVAL_BATCH
from core.network import EVAL_CHUNK
from core.spec.job import Spec
from core.spec.shapes import infer_shapes, normalize_input_shape

BACKWARD_FACTOR = 3  # forward + backward ≈ 3x forward (two GEMMs back for each one forward)


def split_sizes(n_samples: int, validation_split: float) -> tuple[int, int]:
    """(train rows, validation rows), the same rounding as core.batching.split_indices."""
    n_val = 0
    if validation_split > 0.0 and n_samples > 1:
        n_val = min(max(1, round(n_samples * validation_split)), n_samples - 1)
    return n_samples - n_val, n_val


def _eval_row_counts(n: int) -> set[int]:
    """Batch sizes an eval pass over ``n`` rows runs the layers at.

    ``core.metrics.evaluate`` takes chunks of EVAL_BATCH rows and the network splits each
    into chunks of EVAL_CHUNK; the layers keep scratch arrays per batch size.
    """
    sizes: set[int] = set()
    for chunk in {min(EVAL_BATCH, n), n % EVAL_BATCH}:
        if chunk > EVAL_CHUNK:
            sizes.update({EVAL_CHUNK, chunk % EVAL_CHUNK})
        else:
            sizes.add(chunk)
    sizes.discard(0)
    return sizes


def held_rows(batch_rows: int, n_train: int, n_val: int) -> int:
    """Rows of layer arrays a run holds at once: one set per batch size it meets.

    The training batch, the ragged last one, and the validation passes' chunks each get
    their own scratch arrays in every layer (core/layers keeps them per batch size).
    """
    sizes = {batch_rows, n_train % batch_rows if batch_rows else 0}
    if n_val:
        sizes |= _eval_row_counts(n_val)
    sizes.discard(0)
    return sum(sizes)


def dry_run(spec: Spec, input_shape: Sequence[int], n_samples: int) -> dict[str, Any]:
    """Per-layer shapes, parameters, FLOPs and memory; totals for an epoch and a run.

    Parameters
    ----------
    spec : a validated Spec
    input_shape : one sample's shape, (F,), (H, W) or (C, H, W)
    n_samples : rows in the dataset (before the validation split)

    Returns
    -------
    dict with ``layers`` ([{index, type, output_shape, params, flops, memory_bytes}]: flops
    per sample, forward; memory_bytes the arrays the layer holds for one training batch),
    ``total_params``, ``flops_per_epoch``, ``memory_bytes`` (an upper estimate of training
    memory, in the run's dtype: parameters, gradients, optimizer state and the diagnostics'
    epoch-start copy of the parameters (when ``training.diagnostics``); every layer's
    arrays for each batch size the run meets -- the batch, the ragged last batch, the
    validation chunks -- with the batch itself and the loss's arrays; and the data: the
    arrays once (never copied by the run), the buffers batches are gathered into and the
    standardization fit's chunk), ``data_bytes`` (the data set's arrays once, in the run's
    dtype: an upper bound for data kept in a narrower dtype, such as uint8 images),
    ``batch_size`` (resolved) and ``n_train``/``n_val``.

    Raises
    ------
    SpecError naming the layer that cannot take its input.
    """
    shape = normalize_input_shape(input_shape)
    shapes = infer_shapes(spec.model, shape)
    dtype = spec.training.dtype
    itemsize = np.dtype(dtype).itemsize
    n_train, n_val = split_sizes(int(n_samples), spec.training.validation_split)
    batch = spec.training.batch_size
    batch_rows = n_train if batch == "full" else min(int(batch), max(n_train, 1))
    layers: list[dict[str, Any]] = []
    in_shape = shape
    held_per_row = 0
    for i, (layer, out_shape) in enumerate(zip(spec.model.layers, shapes, strict=True)):
        layers.append({"index": i, "type": layer.type, "output_shape": list(out_shape),
                       "params": layer.param_count(in_shape),
                       "flops": layer.flops(in_shape, out_shape),
                       "memory_bytes": layer.memory_bytes(in_shape, out_shape, batch_rows,
                                                          dtype)})
        held_per_row += layer.held_values(in_shape, out_shape)
        in_shape = out_shape
    total_params = sum(layer["params"] for layer in layers)
    forward = sum(layer["flops"] for layer in layers)
    state = spec.optimizer.state_arrays()  # the optimizer class declares its state
    # core.diagnostics keeps the parameters as they were at the epoch's start
    state += 1 if spec.training.diagnostics else 0
    # the batch's inputs, and the loss's outputs-sized arrays (link, gradient, targets)
    held_per_row += math.prod(shape) + 3 * math.prod(shapes[-1])
    sample = math.prod(shape)
    data_bytes = int(n_samples * sample * itemsize)
    # The data itself, once (the run never copies it: core.batching), plus the buffers the
    # training batch and a validation chunk are gathered into before their cast, and the
    # standardization fit's float64 chunk.
    data_held = data_bytes + (batch_rows + min(EVAL_BATCH, n_val)) * sample * itemsize
    if spec.training.standardize:
        data_held += (FIT_CHUNK_ROWS + 1) * sample * 8
    memory = ((2 + state) * total_params
              + held_rows(batch_rows, n_train, n_val) * held_per_row) * itemsize
    return {
        "layers": layers,
        "total_params": int(total_params),
        "flops_per_epoch": int(BACKWARD_FACTOR * forward * n_train + forward * n_val),
        "memory_bytes": int(memory + data_held),
        "data_bytes": data_bytes,
        "batch_size": int(batch_rows),
        "n_train": n_train,
        "n_val": n_val,
    }
