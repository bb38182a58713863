"""The Network: a built stack of layers whose parameters live in one flat array.

After the layers are built, every trainable array and every gradient is moved into
``flat_params`` / ``flat_grads`` (1-D, run dtype) and the layers' dicts hold reshaped views
into them. An optimizer can then update all parameters with a handful of NumPy calls on the
flat arrays, while ``params["0.weight"]`` still reads like a normal weight matrix. Because the
views are shared, callers replace values with :meth:`Network.set_params` (a copy into the
views), never by rebinding dict entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from core.activations import Linear, Softmax
from core.errors import SpecError
from core.layers import LAYERS
from core.layers.base import Array, Layer, Shape
from core.losses import LINK_FUNCTIONS, LINKS

# Eval forwards run in chunks of at most this many rows: a layer keeps scratch arrays per
# batch size, and a 1024-row conv batch would pin hundreds of MB of im2col columns.
EVAL_CHUNK = 256
PREDICT_BATCH = EVAL_CHUNK


def normalize_input_shape(input_shape: Sequence[int]) -> Shape:
    """(H, W) images become (1, H, W): (N, H, W) data is one channel (core.spec.shapes)."""
    shape = tuple(int(d) for d in input_shape)
    return (1, *shape) if len(shape) == 2 else shape


class Network:
    """A sequence of layers, built for ``input_shape`` (no batch dim) in ``dtype``.

    Attributes
    ----------
    params, grads : dict "i.name" -> ndarray, views into ``flat_params`` / ``flat_grads``
    buffers : dict "i.running_mean" ... -> the layers' own (non-trainable) arrays
    weight_names : the names L1/L2 penalise (each layer's ``penalized``: dense/conv weights)
    rng : the Generator that initialised the weights and draws dropout masks
    preprocessing : object with ``apply(X)`` run by :meth:`predict` first, or None
    classes : the label of each output unit (of a single sigmoid output: of 0 and 1), when
        known: read from a ``weights.npz``'s ``__classes__`` and written back by
        :func:`core.checkpoint.export_weights_npz`; None otherwise
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Sequence[int], dtype: DTypeLike,
                 loss_link: str = "identity", preprocessing: Any = None, *,
                 rng: np.random.Generator | None = None, spec: Any = None,
                 loss_name: str | None = None) -> None:
        self.layers = list(layers)
        self.input_shape = normalize_input_shape(input_shape)
        self.dtype = np.dtype(dtype)
        self.loss_link = loss_link
        self.loss_name = loss_name
        self.preprocessing = preprocessing
        self.classes: list[Any] | None = None
        self.spec = spec
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self.shapes: list[Shape] = []
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, self._rng, self.dtype)
            except SpecError as exc:
                raise SpecError(f"model.layers[{i}].{exc.field}", exc.message) from exc
            self.shapes.append(shape)
        self.output_shape = shape
        self._flatten_parameters()
        self.buffers: dict[str, Array] = {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()
        }
        self.weight_names = [
            f"{i}.{name}" for i, layer in enumerate(self.layers)
            for name in layer.penalized if name in layer.params
        ]
        trainable = [i for i, layer in enumerate(self.layers) if layer.params]
        # Backward stops at the first layer with parameters: nothing needs dL/dX.
        self._first_trainable = trainable[0] if trainable else len(self.layers)
        if trainable:
            self.layers[self._first_trainable].needs_input_grad = False

    def _flatten_parameters(self) -> None:
        total = sum(p.size for layer in self.layers for p in layer.params.values())
        self.flat_params = np.empty(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        offset = 0
        for i, layer in enumerate(self.layers):
            for key, value in list(layer.params.items()):
                size = value.size
                view = self.flat_params[offset:offset + size].reshape(value.shape)
                view[...] = value
                grad = self.flat_grads[offset:offset + size].reshape(value.shape)
                layer.params[key] = view
                layer.grads[key] = grad
                self.params[f"{i}.{key}"] = view
                self.grads[f"{i}.{key}"] = grad
                offset += size

    @property
    def rng(self) -> np.random.Generator:
        """The Generator that initialised the weights and draws the dropout masks."""
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        # Dropout layers hold the Generator they were built with: hand them the new one.
        self._rng = generator
        for layer in self.layers:
            if hasattr(layer, "rng"):
                layer.rng = generator

    @property
    def num_params(self) -> int:
        """Number of trainable scalars."""
        return int(self.flat_params.size)

    def forward(self, x: Array, training: bool) -> Array:
        """(N, *input_shape) -> (N, *output_shape); (N, H, W) is read as (N, 1, H, W).

        The result is C-contiguous and may be a layer's scratch array: valid until the next
        forward.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim == len(self.input_shape) and len(self.input_shape) == 3:
            x = x[:, None]
        if training or x.shape[0] <= EVAL_CHUNK:
            return self._forward(x, training)
        out = np.empty((x.shape[0], *self.output_shape), dtype=self.dtype)
        for start in range(0, x.shape[0], EVAL_CHUNK):
            out[start:start + EVAL_CHUNK] = self._forward(x[start:start + EVAL_CHUNK], False)
        return out

    def _forward(self, x: Array, training: bool) -> Array:
        for layer in self.layers:
            x = layer.forward(x, training)
        # A conv or pool output is channel-major (core.layers.base); the loss's sums and
        # every caller see C order.
        return np.ascontiguousarray(x)

    def backward(self, dy: Array) -> Array | None:
        """Back-propagate dL/doutputs (N, *output_shape); fills ``grads`` (may overwrite dy).

        Returns None: the layers before the first trainable one are skipped.
        """
        grad: Array | None = np.asarray(dy, dtype=self.dtype)
        for layer in reversed(self.layers[self._first_trainable:]):
            assert grad is not None
            grad = layer.backward(grad)
        return grad

    def predict(self, X: Array, batch_size: int = PREDICT_BATCH) -> Array:
        """Preprocess, run in eval mode, apply the loss's link. (N, ...) -> (N, k)."""
        X = np.asarray(X)
        if self.preprocessing is not None:
            X = self.preprocessing.apply(X)
        X = np.asarray(X, dtype=self.dtype)
        link = LINK_FUNCTIONS[self.loss_link]
        out = np.empty((X.shape[0], *self.output_shape), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            stop = start + batch_size
            out[start:stop] = link(self.forward(X[start:stop], training=False))
        return out

    def set_params(self, values: Mapping[str, Array], *, strict: bool = True) -> None:
        """Copy arrays into ``params``/``buffers`` by name (shapes must match)."""
        targets = {**self.params, **self.buffers}
        if strict:
            missing = sorted(set(self.params) - set(values))
            if missing:
                raise KeyError(f"missing parameters: {missing}")
        for name, value in values.items():
            if name not in targets:
                if strict:
                    raise KeyError(f"unknown parameter {name!r}")
                continue
            target = targets[name]
            array = np.asarray(value)
            if array.shape != target.shape:
                raise ValueError(f"{name}: shape {array.shape} != expected {target.shape}")
            target[...] = array

    def zero_grad(self) -> None:
        """Set every gradient to 0 (layers overwrite them anyway; for penalty-only steps)."""
        self.flat_grads.fill(0.0)


def _layer_specs(model_spec: Any) -> list[Any]:
    if isinstance(model_spec, Mapping):
        return list(model_spec["layers"])
    if hasattr(model_spec, "layers"):
        return list(model_spec.layers)
    return list(model_spec)


def _type_of(spec: Any) -> Any:
    return spec.get("type") if isinstance(spec, Mapping) else getattr(spec, "type", None)


def build_network(model_spec: Any, input_shape: Sequence[int], seed: int,
                  dtype: DTypeLike = "float32", loss: Any = "cross_entropy") -> Network:
    """Build and initialise the network a model spec describes.

    Parameters
    ----------
    model_spec : ModelSpec (or a dict {"layers": [...]}, or the list of layer specs)
    input_shape : one sample's shape, (F,), (C, H, W) or (H, W)
    seed : seeds ``network.rng = np.random.default_rng(seed)``
    dtype : "float32" or "float64"
    loss : the loss name (or a LossSpec); decides the link ``predict`` applies. A final
        softmax before cross_entropy is fused into the loss (it is the link), never applied twice.
    """
    loss_name = loss if isinstance(loss, str) else _type_of(loss)
    if loss_name not in LINKS:
        raise SpecError("loss.type", f"unknown loss {loss_name!r}; expected one of "
                        f"{sorted(LINKS)}")
    layers: list[Layer] = []
    for i, layer_spec in enumerate(_layer_specs(model_spec)):
        kind = _type_of(layer_spec)
        if kind not in LAYERS:
            raise SpecError(f"model.layers[{i}].type",
                            f"unknown layer type {kind!r}; expected one of {sorted(LAYERS)}")
        try:
            layers.append(LAYERS[kind].from_spec(layer_spec))
        except SpecError as exc:
            raise SpecError(f"model.layers[{i}].{exc.field}", exc.message) from exc
    if loss_name == "cross_entropy" and layers:
        last = layers[-1]
        if isinstance(getattr(last, "activation", None), Softmax):
            last.activation = Linear()  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    return Network(layers, input_shape, dtype, LINKS[loss_name], rng=rng, spec=model_spec,
                   loss_name=loss_name)
