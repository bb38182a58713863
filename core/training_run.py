"""The state of one training run: data, network, optimizer, schedule, RNGs and bookkeeping.

:mod:`core.training` drives the loop; this module prepares everything the loop touches and
moves it to and from a :class:`~core.checkpoint.TrainingState`, so that a resumed run holds
exactly the same values as the run that was interrupted.

Randomness: the weights and dropout masks use ``network.rng`` (``default_rng(seed)``), the
validation split ``default_rng([seed, 1])``, the per-epoch shuffles ``default_rng([seed, 2])``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.batching import FIT_CHUNK_ROWS, Rows, shuffle_generator, split_indices
from core.checkpoint import TrainingState, load_state, model_spec_dict
from core.clipping import clip_grad_norm
from core.datasets import Dataset, validate_for_spec
from core.early_stopping import BestTracker, EarlyStopping
from core.errors import CheckpointError, DatasetError
from core.losses import make_loss
from core.monitors import monitored_value
from core.network import build_network
from core.optimizers import make_optimizer
from core.preprocessing import Preprocessing
from core.regularization import add_penalty_grads
from core.schedules import make_schedule
from core.spec import Spec
from core.spec.training import CLASSIFICATION_LOSSES

Array = NDArray[Any]


def as_spec(spec: Any) -> Spec:
    """A :class:`Spec` from a Spec or its dict form (validated by ``Spec.from_dict``)."""
    return Spec.from_dict(dict(spec)) if isinstance(spec, Mapping) else spec


def _standardizable_in_place(X: Array, dtype: np.dtype[Any]) -> bool:
    """X can take its standardization in place: the run's dtype (a uint8 image cannot
    hold a standardized value), writeable, and one block of memory."""
    return X.dtype == dtype and bool(X.flags.writeable) and bool(X.flags.c_contiguous)


class RunSetup:
    """Everything one run of :func:`core.training.train` works on.

    Attributes
    ----------
    train_rows, val_rows : the two sides of the split (:class:`core.batching.Rows`): batches
        of run-dtype inputs, standardized when asked, and targets (class labels ``intp``)
    network, loss, optimizer, schedule : built from the spec; the optimizer updates the
        network's ONE flat parameter array (``{"all": network.flat_params}``)
    epoch : epochs completed; ``partial`` the accumulators of the epoch in progress
    """

    def __init__(self, spec: Spec, X: Array, y: Array, *,
                 init_params: Mapping[str, Array] | None = None,
                 resume: bytes | None = None, overwrite_inputs: bool = False) -> None:
        t = spec.training
        self.spec = spec
        self.dtype = np.dtype(t.dtype)
        self.loss_name = str(spec.loss.type)
        self.classification = (getattr(spec, "task", None) == "classification"
                               or self.loss_name in CLASSIFICATION_LOSSES)
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim == 0 or X.shape[0] == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
            raise DatasetError(f"X {X.shape} and y {y.shape} must have the same, non-zero "
                               "number of rows", "dataset")
        # The checks the service runs on uploads, so a direct caller gets the same row-named
        # errors instead of a silently wrapped negative label.
        validate_for_spec(Dataset(X, y, str(getattr(spec, "task", "unknown"))), spec)
        seed = int(t.seed)
        self.network = build_network(spec.model, X.shape[1:], seed=seed, dtype=self.dtype,
                                     loss=spec.loss)
        net = self.network
        X = X.reshape((X.shape[0], *net.input_shape))
        y = y.astype(np.intp if self.loss_name == "cross_entropy" else self.dtype, copy=False)
        train_idx, val_idx = split_indices(X.shape[0], float(t.validation_split or 0.0), seed)
        # No copy of X: each side of the split gathers, casts and standardizes its rows one
        # batch at a time (core.batching), the same values a whole cast copy would hold.
        self.train_rows = Rows(X, y, train_idx, self.dtype)
        self.val_rows = Rows(X, y, val_idx, self.dtype)
        state = load_state(resume) if resume is not None else None
        prep: Preprocessing | None = None
        if state is not None:
            prep = state.preprocessing
        elif t.standardize:
            prep = Preprocessing.fit_chunks(partial(self.train_rows.chunks, FIT_CHUNK_ROWS),
                                            self.dtype)
        net.preprocessing = prep
        if prep is not None and overwrite_inputs and _standardizable_in_place(X, self.dtype):
            # The caller's X is ours: standardize it once, so that a batch is a gather and
            # nothing more (the subtract and divide per batch were ~2.5% of an MLP epoch).
            # The same element-wise float ops as per batch, so the same bits.
            for start in range(0, X.shape[0], FIT_CHUNK_ROWS):
                prep.apply_inplace(X[start:start + FIT_CHUNK_ROWS])
            prep = None
        self.train_rows.preprocessing = self.val_rows.preprocessing = prep
        full = t.batch_size == "full" or t.batch_size is None
        self.batch_size = self.train_rows.n if full else int(t.batch_size)
        self.loss = make_loss(spec.loss, self.dtype)
        self.optimizer = make_optimizer(spec.optimizer, {"all": net.flat_params})
        self.schedule = make_schedule(t.lr_schedule, self.optimizer, int(t.epochs))
        self.plateau_monitor = str(getattr(t.lr_schedule, "monitor", None) or "val_loss")
        self.shuffle_rng = shuffle_generator(seed)
        self.early_stopping = (None if t.early_stopping is None
                               else EarlyStopping.from_spec(t.early_stopping))
        self.best = BestTracker(str(spec.checkpoints.monitor or "val_loss"))
        self.epochs = int(t.epochs)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        # Each epoch's metrics JSON-encoded once, when recorded: a checkpoint joins them
        # instead of encoding the whole history again (core.checkpoint, ``__history__``).
        self._history_json: list[str] = []
        self.best_params: dict[str, Array] | None = None
        self.partial: dict[str, Any] | None = None
        if state is not None:
            self._load(state)
        elif init_params is not None:
            try:
                net.set_params(init_params)
            except (KeyError, ValueError) as exc:
                raise CheckpointError(f"init_params do not fit the model: {exc}") from exc

    def snapshot(self) -> dict[str, Array]:
        """Copies of every parameter and buffer, by name."""
        net = self.network
        return {k: v.copy() for k, v in {**net.params, **net.buffers}.items()}

    def begin_epoch(self) -> dict[str, Any]:
        """The accumulators of the epoch about to run (or resumed mid-way)."""
        if self.partial is None:
            self.partial = {"batch": 0, "rng_start": self.shuffle_rng.bit_generator.state,
                            "loss_sum": 0.0, "seen": 0, "correct": 0, "count": 0,
                            "seconds": 0.0, "lr": float(self.optimizer.lr)}
        else:
            # Redraw the interrupted epoch's permutation: same order, same Generator state.
            self.shuffle_rng.bit_generator.state = self.partial["rng_start"]
        return self.partial

    def finish_epoch(self, metrics: dict[str, float]) -> bool:
        """Record a completed epoch, step the schedule and early stopping; True if best."""
        self.epoch += 1
        self.history.append(metrics)
        self._history_json.append(json.dumps(metrics, sort_keys=True))
        self.partial = None
        self.schedule.step(monitored_value(metrics, self.plateau_monitor))
        is_best = self.best.update(self.epoch, metrics)
        es = self.early_stopping
        if es is not None and es.update(self.epoch, metrics) and es.restore_best:
            self.best_params = self.snapshot()
        return is_best

    def restore_best(self) -> int | None:
        """Put the best epoch's weights back (early stopping's restore_best); its epoch."""
        es = self.early_stopping
        if es is None or not es.restore_best or self.best_params is None:
            return None
        unchanged = es.best_epoch == self.epoch and (self.partial or {}).get("batch", 0) == 0
        if unchanged:
            return None
        self.network.set_params(self.best_params)
        return es.best_epoch

    def add_penalty_grads(self, l1: float, l2: float) -> None:
        """L1/L2 gradients of the weight matrices, added to the network's gradients."""
        net = self.network
        add_penalty_grads(net.params, net.grads, net.weight_names, l1, l2)

    def clip_grad_norm(self, max_norm: float) -> None:
        """Global L2-norm clipping of the gradients in place, per array as torch sums it."""
        clip_grad_norm(self.network.grads, max_norm)

    def state(self, stop_reason: str | None, *, copy: bool = True) -> TrainingState:
        """The run as a :class:`TrainingState`; ``copy=False`` shares the live arrays."""
        net = self.network
        arrays = {**net.params, **net.buffers}
        return TrainingState(
            spec=self.spec.to_dict(), model_spec=model_spec_dict(self.spec.model),
            loss=self.loss_name, input_shape=tuple(net.input_shape), dtype=self.dtype.name,
            params={k: v.copy() for k, v in arrays.items()} if copy else arrays,
            preprocessing=net.preprocessing, epoch=self.epoch,
            # An epoch's metrics dict is never changed once recorded: a copy shares them.
            history=list(self.history) if copy else self.history,
            history_json="[" + ", ".join(self._history_json) + "]",
            best_epoch=self.best.best_epoch,
            best_value=self.best.best,
            early_stopping=None if self.early_stopping is None
            else self.early_stopping.state_dict(),
            best_params=self.best_params, optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(), rng=dict(net.rng.bit_generator.state),
            shuffle_rng=dict(self.shuffle_rng.bit_generator.state),
            partial=None if self.partial is None else dict(self.partial),
            stop_reason=stop_reason)

    def _load(self, state: TrainingState) -> None:
        net = self.network
        if tuple(state.input_shape) != tuple(net.input_shape) or state.dtype != self.dtype.name:
            raise CheckpointError(
                f"checkpoint is for inputs {tuple(state.input_shape)} {state.dtype}, this run "
                f"has {tuple(net.input_shape)} {self.dtype.name}")
        try:
            net.set_params(state.params)
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint does not fit the model: {exc}") from exc
        net.rng.bit_generator.state = state.rng
        self.shuffle_rng.bit_generator.state = state.shuffle_rng
        self.schedule.load_state_dict(state.scheduler)
        self.optimizer.load_state_dict(state.optimizer)  # after the schedule: it holds lr
        if self.early_stopping is not None and state.early_stopping is not None:
            self.early_stopping.load_state_dict(state.early_stopping)
        self.best.load_state_dict({"best": state.best_value, "best_epoch": state.best_epoch})
        self.epoch = state.epoch
        self.history = [dict(h) for h in state.history]
        self._history_json = [json.dumps(h, sort_keys=True) for h in self.history]
        self.best_params = state.best_params
        self.partial = None if state.partial is None else dict(state.partial)
