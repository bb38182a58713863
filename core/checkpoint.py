"""Checkpoints as ``.npz`` bytes: the public ``weights.npz`` and the internal training state.

Both are written with ``np.savez`` from numeric and unicode arrays only and are read with
``allow_pickle=False``: no pickle, ever (docs/checkpoint-format.md). The internal checkpoint
holds exactly the ``weights.npz`` arrays (so a user can open it the same way) plus:

- ``__state__``: a 0-d unicode JSON string with everything else a resume needs (format
  version, full job spec, completed epochs, early-stopping and scheduler state, the
  bit-generator states, loss name, input shape, dtype, best epoch, a partial epoch);
- ``__history__``: the per-epoch metrics, a JSON list as UTF-8 bytes (a 1-d uint8 array).
  It has its own array (format 2; format 1 kept it in ``__state__``) because it grows with
  every epoch: a training run keeps it encoded as it goes (``TrainingState.history_json``),
  so checkpointing epoch 1,000 does not encode 1,000 epochs of metrics again, nor does
  reading the state for a prediction decode them. Format 3 stores the bytes; format 2 stored
  a 0-d unicode array, four bytes per character, which made it 6/7 of a digits checkpoint
  at epoch 1,000 (886 KB against 316 KB);
- ``__optim__/<key>``: the optimizer's state arrays (``__optim__/exp_avg/all`` ...);
- ``__best__/<name>``: the early-stopping snapshot of the best weights, when kept;
- ``__resume__/<name>``: when the public arrays hold restored best weights at the end of a
  run, the weights the run actually stopped with, which a resume continues from.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import CheckpointError
from core.network import Network, build_network
from core.preprocessing import MEAN_KEY, STD_KEY, Preprocessing
from core.spec.training import DTYPES as RUN_DTYPES

Array = NDArray[Any]
FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
SPEC_KEY = "__spec__"
CLASSES_KEY = "__classes__"
STATE_KEY = "__state__"
HISTORY_KEY = "__history__"
OPTIM_PREFIX = "__optim__/"
BEST_PREFIX = "__best__/"
RESUME_PREFIX = "__resume__/"
# What a network for predict never needs: the optimizer's state, the best and resume copies
# of the weights and the history; with Adam, two thirds of a checkpoint's bytes.
TRAINING_ONLY = (OPTIM_PREFIX, BEST_PREFIX, RESUME_PREFIX, HISTORY_KEY)


@dataclass
class TrainingState:
    """Everything a run needs to continue bit for bit.

    ``params`` holds trainable arrays and buffers by name (``"0.weight"``,
    ``"1.running_mean"``): the ones a resume continues from. ``final_params``, when set, are
    the weights the run ended with after restoring the best epoch: they are what the public
    arrays (and ``load_checkpoint``) show. ``optimizer`` is ``Optimizer.state_dict()``; the
    RNG states are ``Generator.bit_generator.state`` dicts (JSON-able ints); ``partial``
    describes an epoch interrupted between batches (None at an epoch boundary).
    """

    spec: dict[str, Any]
    model_spec: dict[str, Any]
    loss: str
    input_shape: tuple[int, ...]
    dtype: str
    params: dict[str, Array]
    preprocessing: Preprocessing | None = None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    early_stopping: dict[str, Any] | None = None
    best_params: dict[str, Array] | None = None
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    shuffle_rng: dict[str, Any] = field(default_factory=dict)
    partial: dict[str, Any] | None = None
    stop_reason: str | None = None
    # ``history`` as the JSON list ``dump_checkpoint`` writes (``json.dumps(history,
    # sort_keys=True)``), when the caller keeps it encoded; None: encoded on demand.
    history_json: str | None = None
    final_params: dict[str, Array] | None = None


def _json_array(value: Any) -> Array:
    # A 0-d unicode array is what np.load(allow_pickle=False) can read back as text.
    return np.array(json.dumps(value, sort_keys=True))


def _savez(arrays: Mapping[str, Array]) -> bytes:
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise CheckpointError(f"refusing to write object array {name!r}: no pickle")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def class_array(classes: Sequence[Any]) -> Array:
    """``__classes__``: a plain int64 array for integer labels, else a unicode array (labels
    read from a CSV or JSON target are strings): both load with ``allow_pickle=False``."""
    labels = list(classes)
    if labels and all(isinstance(c, int | np.integer) and not isinstance(c, bool)
                      for c in labels):
        return np.asarray(labels, dtype=np.int64)
    return np.asarray([str(c) for c in labels], dtype=np.str_)


def _public_arrays(network: Network, classes: Sequence[Any] | None = None) -> dict[str, Array]:
    arrays: dict[str, Array] = {**network.params, **network.buffers}
    arrays[SPEC_KEY] = _json_array(model_spec_dict(network.spec))
    if network.preprocessing is not None:
        arrays.update(network.preprocessing.to_arrays())
    labels = network.classes if classes is None else classes
    if labels and _labels_fit(network, len(labels)):
        arrays[CLASSES_KEY] = class_array(labels)
    return arrays


def _labels_fit(network: Network, count: int) -> bool:
    """One label per output unit, or two for a single (sigmoid) output: otherwise a user
    indexing ``__classes__`` by an output's argmax could miss, so none are written."""
    units = int(np.prod(network.output_shape))
    return count == units or (units == 1 and count == 2)


def model_spec_dict(model_spec: Any) -> dict[str, Any]:
    """A model spec (ModelSpec, dict or list of layer specs) as a JSON-able dict."""
    if isinstance(model_spec, Mapping):
        return json.loads(json.dumps(dict(model_spec)))  # type: ignore[no-any-return]
    if isinstance(model_spec, list | tuple):
        return {"layers": [_layer_dict(layer) for layer in model_spec]}
    to_dict = getattr(model_spec, "to_dict", None)
    if to_dict is None:
        raise CheckpointError(f"cannot serialise model spec of type {type(model_spec).__name__}")
    return to_dict()  # type: ignore[no-any-return]


def _layer_dict(layer: Any) -> dict[str, Any]:
    if isinstance(layer, Mapping):
        return dict(layer)
    return layer.to_dict()  # type: ignore[no-any-return]


def export_weights_npz(network: Network, classes: Sequence[Any] | None = None) -> bytes:
    """The public ``weights.npz``: params and buffers by name, ``__spec__``, preprocessing,
    and ``__classes__`` (the label of each output unit) from ``classes``, else from
    ``network.classes``, when there are any."""
    return _savez(_public_arrays(network, classes))


def dump_checkpoint(state: TrainingState) -> bytes:
    """The internal checkpoint of ``state`` as ``.npz`` bytes (see the module docstring)."""
    arrays: dict[str, Array] = dict(state.final_params or state.params)
    if state.final_params is not None:
        arrays.update({RESUME_PREFIX + k: v for k, v in state.params.items()})
    arrays[SPEC_KEY] = _json_array(state.model_spec)
    history = state.history_json
    if history is None:
        history = json.dumps(state.history, sort_keys=True)
    arrays[HISTORY_KEY] = np.frombuffer(history.encode("utf-8"), dtype=np.uint8)
    if state.preprocessing is not None:
        arrays.update(state.preprocessing.to_arrays())
    optim_scalars: dict[str, Any] = {}
    for key, value in state.optimizer.items():
        if isinstance(value, np.ndarray):
            arrays[OPTIM_PREFIX + key] = value
        else:
            optim_scalars[key] = value
    for name, value in (state.best_params or {}).items():
        arrays[BEST_PREFIX + name] = value
    meta = {
        "format_version": FORMAT_VERSION,
        "spec": state.spec,
        "loss": state.loss,
        "input_shape": list(state.input_shape),
        "dtype": state.dtype,
        "epoch": state.epoch,
        "best_epoch": state.best_epoch,
        "best_value": state.best_value,
        "early_stopping": state.early_stopping,
        "has_best_params": state.best_params is not None,
        "optimizer_scalars": optim_scalars,
        "scheduler": state.scheduler,
        "rng": state.rng,
        "shuffle_rng": state.shuffle_rng,
        "partial": state.partial,
        "stop_reason": state.stop_reason,
    }
    arrays[STATE_KEY] = _json_array(meta)
    return _savez(arrays)


def _read_npz(source: bytes | str | os.PathLike[str],
              skip: tuple[str, ...] = ()) -> dict[str, Array]:
    """The arrays of an npz, but for names starting with one of `skip` (never decompressed
    or checksummed: an npz reads each array only when asked for it)."""
    try:
        stream: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
        with np.load(stream, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files if not name.startswith(skip)}
    # BadZipFile: a member whose CRC-32 does not match its bytes (zipfile checks it at the end).
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"not a readable checkpoint .npz: {exc}") from exc


def _json_of(arrays: Mapping[str, Array], key: str) -> Any:
    array = arrays[key]
    if array.ndim != 0 or array.dtype.kind != "U":
        raise CheckpointError(f"{key} must be a 0-d unicode JSON string")
    try:
        return json.loads(str(array[()]))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{key} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise CheckpointError(f"{key} nests too deeply to be a model spec") from None


def _history_of(arrays: Mapping[str, Array]) -> Any:
    """``__history__``: UTF-8 JSON bytes (format 3) or a 0-d unicode JSON string (format 2)."""
    array = arrays[HISTORY_KEY]
    if array.ndim == 0:
        return _json_of(arrays, HISTORY_KEY)
    if array.ndim != 1 or array.dtype != np.uint8:
        raise CheckpointError(f"{HISTORY_KEY} must be UTF-8 JSON bytes")
    try:
        return json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{HISTORY_KEY} is not valid UTF-8 JSON: {exc}") from exc


def _is_internal(name: str) -> bool:
    return name.startswith("__")


def load_state(data: bytes | str | os.PathLike[str]) -> TrainingState:
    """Read an internal checkpoint back into a :class:`TrainingState`."""
    arrays = _read_npz(data)
    if STATE_KEY not in arrays:
        raise CheckpointError("this is a weights-only .npz: it has no training state to resume")
    meta = _json_of(arrays, STATE_KEY)
    if meta.get("format_version") not in READABLE_FORMATS:
        raise CheckpointError(f"unsupported checkpoint format {meta.get('format_version')!r}")
    history = _history_of(arrays) if HISTORY_KEY in arrays else meta["history"]
    optimizer: dict[str, Any] = dict(meta["optimizer_scalars"])
    best: dict[str, Array] = {}
    resume: dict[str, Array] = {}
    for name, value in arrays.items():
        if name.startswith(OPTIM_PREFIX):
            optimizer[name[len(OPTIM_PREFIX):]] = value
        elif name.startswith(BEST_PREFIX):
            best[name[len(BEST_PREFIX):]] = value
        elif name.startswith(RESUME_PREFIX):
            resume[name[len(RESUME_PREFIX):]] = value
    public = {k: v for k, v in arrays.items() if not _is_internal(k)}
    return TrainingState(
        spec=meta["spec"],
        model_spec=_json_of(arrays, SPEC_KEY),
        loss=meta["loss"],
        input_shape=tuple(meta["input_shape"]),
        dtype=meta["dtype"],
        params=resume or public,
        final_params=public if resume else None,
        preprocessing=Preprocessing.from_arrays(arrays),
        epoch=int(meta["epoch"]),
        history=list(history),
        best_epoch=meta["best_epoch"],
        best_value=meta["best_value"],
        early_stopping=meta["early_stopping"],
        best_params=best if meta["has_best_params"] else None,
        optimizer=optimizer,
        scheduler=meta["scheduler"],
        rng=meta["rng"],
        shuffle_rng=meta["shuffle_rng"],
        partial=meta["partial"],
        stop_reason=meta["stop_reason"],
    )


def load_checkpoint(source: bytes | str | os.PathLike[str], *,
                    input_shape: tuple[int, ...] | None = None,
                    loss: str | None = None) -> Network:
    """A network with ``.predict`` from an internal checkpoint or a ``weights.npz``.

    A ``weights.npz`` does not record the loss (it decides ``predict``'s link) nor always
    the input shape; pass them when known. Otherwise the link is the identity (raw outputs)
    and the input shape comes from ``__input_mean__``, or the first dense layer, or the
    smallest square image size whose flattened features fit the first dense layer.
    """
    arrays = _read_npz(source, skip=TRAINING_ONLY)
    if SPEC_KEY not in arrays:
        raise CheckpointError("missing __spec__: not a Weightsmith checkpoint")
    model_spec = _json_of(arrays, SPEC_KEY)
    values = {k: v for k, v in arrays.items() if not _is_internal(k)}
    if STATE_KEY in arrays:
        meta = _json_of(arrays, STATE_KEY)
        input_shape = input_shape or tuple(meta["input_shape"])
        loss = loss or meta["loss"]
        dtype = str(meta["dtype"])
    else:
        _check_dtypes({**values, **{k: arrays[k] for k in (MEAN_KEY, STD_KEY) if k in arrays}})
        first = next(iter(values.values()), None)
        dtype = str(first.dtype) if first is not None else "float32"
    preprocessing = Preprocessing.from_arrays(arrays)
    if input_shape is None:
        input_shape = _infer_input_shape(model_spec, values, preprocessing)
    network = _build_checked(model_spec, input_shape, dtype, loss or "mse", values)
    if loss is None:
        network.loss_link = "identity"
    network.preprocessing = preprocessing
    if CLASSES_KEY in arrays:
        network.classes = arrays[CLASSES_KEY].tolist()
    return network


def _check_dtypes(values: Mapping[str, Array]) -> None:
    """A weights.npz names its run dtype by its arrays: float32 or float64, nothing else."""
    for name, value in values.items():
        if value.dtype.name not in RUN_DTYPES:
            raise CheckpointError(f"{name}: dtype {value.dtype.name} is not supported; "
                                  f"weights must be one of {list(RUN_DTYPES)}")


def check_importable(network: Network) -> None:
    """Refuse weights an import must not store: NaN or infinite values, a std of 0.

    A trained checkpoint never holds these (training stops on divergence; `Preprocessing.fit`
    replaces a zero std by 1); an imported one would predict NaN, or divide by zero.
    """
    arrays = {**network.params, **network.buffers}
    if network.preprocessing is not None:
        arrays[MEAN_KEY] = network.preprocessing.mean
        arrays[STD_KEY] = network.preprocessing.std
    for name, value in arrays.items():
        if not bool(np.isfinite(value).all()):
            raise CheckpointError(f"{name}: NaN or infinite values cannot be imported")
    if network.preprocessing is not None and not bool((network.preprocessing.std > 0).all()):
        raise CheckpointError(f"{STD_KEY}: every std must be positive (it divides the inputs)")


def _build_checked(model_spec: Any, input_shape: tuple[int, ...], dtype: str, loss: str,
                   values: Mapping[str, Array]) -> Network:
    try:
        network = build_network(model_spec, input_shape, seed=0, dtype=dtype, loss=loss)
        network.set_params(values)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"weights do not fit the model spec: {exc}") from exc
    return network


def _infer_input_shape(model_spec: Any, values: Mapping[str, Array],
                       preprocessing: Preprocessing | None) -> tuple[int, ...]:
    if preprocessing is not None:
        return tuple(preprocessing.mean.shape)
    first = values.get("0.weight")
    layers = model_spec_dict(model_spec).get("layers", [])
    if first is not None and layers and layers[0].get("type") == "dense":
        return (int(first.shape[0]),)
    if first is not None and first.ndim == 4:
        channels = int(first.shape[1])
        for side in range(1, 257):
            try:
                build_network(model_spec, (channels, side, side), seed=0,
                              dtype=str(first.dtype), loss="mse").set_params(values)
            except Exception:  # a size that does not fit is simply skipped
                continue
            return (channels, side, side)
    raise CheckpointError("cannot infer the input shape from weights.npz; pass input_shape")


def weight_stats(network: Network) -> list[dict[str, Any]]:
    """Per-array statistics for the API: name, shape, mean, std, min, max, Frobenius norm.

    Computed in float64 so the figures do not depend on the run dtype's rounding.
    """
    stats = []
    for name, array in {**network.params, **network.buffers}.items():
        a = np.asarray(array, dtype=np.float64)
        empty = a.size == 0
        stats.append({
            "name": name,
            "shape": list(a.shape),
            "mean": 0.0 if empty else float(a.mean()),
            "std": 0.0 if empty else float(a.std()),
            "min": 0.0 if empty else float(a.min()),
            "max": 0.0 if empty else float(a.max()),
            "frobenius": float(np.sqrt(np.vdot(a, a))),
        })
    return stats
