"""The training loop: ``train(spec, X, y, ...) -> TrainResult``.

One run, in order: split off the LAST ``validation_split`` fraction of a seeded
permutation; fit the standardization on the training rows only; then per epoch: shuffle (the
run's own Generator), and per batch gather its rows, cast them to the run dtype and
standardize them (core.batching: X itself is never copied), forward (training mode), loss,
backward, L1/L2 penalty gradients, global-norm clipping and one optimizer step on the
network's single flat parameter array. After each epoch: validation in eval mode (in
batches too), the schedule's step, the best-epoch and early-stopping bookkeeping,
``on_epoch``.

The reported ``loss`` is the data loss only (mean over the epoch's batches, weighted by batch
size), without the L1/L2 penalty: PyTorch users log it that way, and it stays comparable
with ``val_loss``. (Keras adds the penalty; we chose comparability.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.batching import EpochBatches
from core.checkpoint import TrainingState, dump_checkpoint, export_weights_npz
from core.diagnostics import LayerDiagnostics
from core.errors import DivergedError
from core.metrics import EVAL_BATCH, correct_count, evaluate_batches
from core.network import Network
from core.training_run import RunSetup, as_spec

Array = NDArray[Any]
STOP_REASONS = ("epochs_done", "early_stopping", "max_runtime", "cancelled", "diverged",
                "batch_lr")


@dataclass
class EpochReport:
    """What ``on_epoch`` receives after each completed epoch.

    ``checkpoint()`` and ``weights_npz()`` serialise lazily: call them inside the callback,
    before training moves on. ``deferred_checkpoint()`` copies the state inside the callback
    and serialises it whenever its result is called.
    """

    epoch: int
    epochs: int
    metrics: dict[str, float]
    is_best: bool
    _checkpoint: Callable[[], bytes] = field(repr=False)
    _weights: Callable[[], bytes] = field(repr=False)
    _state: Callable[[], TrainingState] = field(repr=False)
    # per-layer rows of core.diagnostics (None when training.diagnostics is off)
    diagnostics: list[dict[str, Any]] | None = None

    def checkpoint(self) -> bytes:
        """The full training state (internal ``.npz``), enough to resume bit for bit."""
        return self._checkpoint()

    def deferred_checkpoint(self) -> Callable[[], bytes]:
        """``checkpoint()`` for later: the state is copied now (a few array copies) and
        serialised only if and when the returned function is called, to the same bytes.

        For a caller that keeps only some epochs' checkpoints (the worker's policy prunes
        most of a second's worth of short epochs) without stalling training to serialise
        the ones it will drop.
        """
        return partial(dump_checkpoint, self._state())

    def weights_npz(self) -> bytes:
        """The public ``weights.npz`` of this epoch's weights."""
        return self._weights()


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    ``network`` holds the final weights (the best epoch's when early stopping restored them);
    ``state`` is where the run stopped, so ``checkpoint()`` resumes exactly and still shows
    the restored weights to ``load_checkpoint``. ``failure`` carries the DivergedError
    message when ``stop_reason == "diverged"``.
    """

    network: Network
    history: list[dict[str, float]]
    stop_reason: str
    best_epoch: int | None
    state: TrainingState
    failure: str | None = None
    restored_epoch: int | None = None

    def checkpoint(self) -> bytes:
        """The final internal checkpoint (resumable)."""
        return dump_checkpoint(self.state)

    @property
    def weights_metrics(self) -> dict[str, float]:
        """The metrics of the epoch whose weights ``network`` (and ``checkpoint()``'s public
        arrays) hold: the restored best epoch's when early stopping put them back, else the
        last completed epoch's; ``{}`` before the first epoch ends. A final checkpoint records
        these, so its metrics always describe its weights."""
        epoch = self.restored_epoch or len(self.history)
        return dict(self.history[epoch - 1]) if epoch else {}

    def weights_npz(self) -> bytes:
        """The public ``weights.npz`` of ``network``."""
        return export_weights_npz(self.network)


def train(spec: Any, X: Array, y: Array, *, init_params: Mapping[str, Array] | None = None,
          on_epoch: Callable[[EpochReport], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          resume: bytes | None = None,
          max_runtime_s: float | None = None,
          divergence_factor: float | None = None,
          batch_lr: Callable[[float], float | None] | None = None,
          overwrite_inputs: bool = False) -> TrainResult:
    """Train the network ``spec`` describes on X (N, features) or (N, C, H, W) / (N, H, W).

    Parameters
    ----------
    spec : Spec or its dict form (docs/spec.md)
    X : ndarray (N, ...) inputs in any numeric dtype (uint8 images stay uint8 in memory);
        each batch is cast to ``spec.training.dtype``, exactly as casting all of X first
    y : ndarray (N,) integer class labels, or (N,) / (N, k) regression or BCE targets
    init_params : name -> array replacing the initial weights (warm start)
    on_epoch : called with an :class:`EpochReport` after every completed epoch
    should_stop : polled between batches; True stops with ``"cancelled"``
    resume : an internal checkpoint's bytes: continue exactly where it stopped, up to
        ``spec.training.epochs`` epochs in total
    max_runtime_s : a runtime budget on top of ``spec.training.max_runtime_s`` (the tighter
        one applies), for a caller's own limit (the worker's service-wide cap); unlike the
        spec's, it is not recorded in checkpoints, so it cannot make two runs' states differ
    divergence_factor : an epoch whose training loss exceeds this many times the run's first
        epoch loss (kept in the history, so a resumed run compares with the same value) ends
        the run ``"diverged"``, as a non-finite loss does; None: only non-finite values do
    batch_lr : a per-batch rate rule (core.lr_range_test.RangeTest.rate): called with each
        batch's loss before its backward pass, it returns the rate that batch's step takes,
        or None to end the run there with stop_reason ``"batch_lr"`` (it is asked before the
        non-finite check, so it may end a run a NaN would have called diverged); it
        overrides the schedule's rate batch by batch
    overwrite_inputs : X belongs to the run (as ``overwrite_a`` does in SciPy): with
        ``training.standardize`` and X already C-contiguous in the run dtype and writeable,
        X is standardized in place once instead of every batch; the results are the same
        bits. The worker passes True for the arrays it reads from the database.

    Returns
    -------
    TrainResult; divergence is reported in it (``stop_reason="diverged"``), not raised.
    """
    run = RunSetup(as_spec(spec), X, y, init_params=init_params, resume=resume,
                   overwrite_inputs=overwrite_inputs)
    return _Loop(run, on_epoch, should_stop, max_runtime_s, divergence_factor, batch_lr).fit()


class _Loop:
    """The epoch/batch loop over a prepared :class:`RunSetup`."""

    def __init__(self, run: RunSetup, on_epoch: Callable[[EpochReport], None] | None,
                 should_stop: Callable[[], bool] | None,
                 max_runtime_s: float | None = None,
                 divergence_factor: float | None = None,
                 batch_lr: Callable[[float], float | None] | None = None) -> None:
        self.run = run
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        t = run.spec.training
        self.batches = EpochBatches(run.train_rows, run.batch_size, bool(t.shuffle))
        reg = run.spec.regularization
        self.l1, self.l2 = float(reg.l1 or 0.0), float(reg.l2 or 0.0)
        self.clip = t.clip_grad_norm
        budgets = [float(b) for b in (t.max_runtime_s, max_runtime_s) if b is not None]
        self.deadline = time.perf_counter() + min(budgets) if budgets else None
        self.divergence_factor = divergence_factor
        self.batch_lr = batch_lr
        self.failure: str | None = None
        self.diagnostics = LayerDiagnostics(run.network) if t.diagnostics else None

    def fit(self) -> TrainResult:
        run = self.run
        stop: str | None = None
        # Overflow and NaN are handled by the divergence guard, which names the epoch;
        # NumPy's RuntimeWarnings on the way there would only be noise in worker logs.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while stop is None and run.epoch < run.epochs:
                stop = self._epoch()
                if stop is None:
                    stop = self._end_of_epoch()
        state = run.state(stop or "epochs_done")
        restored = run.restore_best()
        if restored is not None:
            state.final_params = run.snapshot()
        return TrainResult(run.network, list(run.history), stop or "epochs_done",
                           run.best.best_epoch, state, self.failure, restored)

    def _epoch(self) -> str | None:
        """Run (the rest of) one epoch's batches; a stop reason if it ended early."""
        run, net, opt = self.run, self.run.network, self.run.optimizer
        p = run.begin_epoch()
        diagnostics = self.diagnostics
        if diagnostics is not None:
            diagnostics.begin_epoch()
        perm = self.batches.order(run.shuffle_rng)
        flat_grads = {"all": net.flat_grads}
        classification, loss_name = run.classification, run.loss_name
        loss = run.loss
        t0 = time.perf_counter()
        for index, (xb, yb) in enumerate(self.batches.batches(perm, p["batch"]), p["batch"]):
            reason = self._interrupt()
            if reason is not None:
                p["batch"], p["seconds"] = index, p["seconds"] + time.perf_counter() - t0
                return reason
            outputs = net.forward(xb, training=True)
            value = loss.forward(outputs, yb)
            if self.batch_lr is not None:
                lr = self.batch_lr(value)
                if lr is None:
                    p["batch"], p["seconds"] = index, p["seconds"] + time.perf_counter() - t0
                    return "batch_lr"
                opt.lr = lr
            if not math.isfinite(value):
                self.failure = str(DivergedError(run.epoch + 1, (
                    f"loss became {value} at epoch {run.epoch + 1}, batch {index + 1}; "
                    "lower the learning rate or clip gradients")))
                p["batch"], p["seconds"] = index, p["seconds"] + time.perf_counter() - t0
                return "diverged"
            rows = int(xb.shape[0])
            p["loss_sum"] += value * rows
            p["seen"] += rows
            if classification:
                c, k = correct_count(outputs, yb, loss_name)
                p["correct"] += c
                p["count"] += k
            net.backward(loss.backward())
            if self.l1 or self.l2:
                run.add_penalty_grads(self.l1, self.l2)
            if self.clip is not None:
                run.clip_grad_norm(float(self.clip))
            if diagnostics is not None:
                diagnostics.add_batch()
            opt.step(flat_grads)
        p["batch"], p["seconds"] = self.batches.num_batches, p["seconds"] + time.perf_counter() - t0
        return None

    def _grown_loss(self, loss: float) -> str | None:
        """Why `loss` counts as diverged: past ``divergence_factor`` times the first epoch's.

        A finite blow-up (0.7 -> 4.5e22) is no less diverged than an overflow; comparing with
        the first epoch (not the previous one) tolerates a noisy or warming-up run.
        """
        first = float(self.run.history[0]["loss"])
        factor = self.divergence_factor
        if factor is None or not first > 0.0 or loss <= factor * first:
            return None
        return (f"loss {loss:.6g} at epoch {self.run.epoch} is more than {factor:g} times the "
                f"first epoch's {first:.6g}; lower the learning rate or clip gradients")

    def _interrupt(self) -> str | None:
        if self.should_stop is not None and self.should_stop():
            return "cancelled"
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return "max_runtime"
        return None

    def _end_of_epoch(self) -> str | None:
        """Validate, record, step the schedule, report; a stop reason if training ends here."""
        run = self.run
        t0 = time.perf_counter()
        p = run.partial
        assert p is not None
        # Before validation: its eval forwards replace the last batch's activations.
        layers = None if self.diagnostics is None else self.diagnostics.end_epoch()
        metrics: dict[str, float] = {"loss": p["loss_sum"] / p["seen"]}
        if run.classification:
            metrics["accuracy"] = p["correct"] / p["count"]
        if run.val_rows.n:
            val = evaluate_batches(run.network, run.loss, run.val_rows.batches(EVAL_BATCH),
                                   classification=run.classification)
            metrics.update({f"val_{k}": v for k, v in val.items()})
        metrics["lr"] = p["lr"]
        metrics["seconds"] = p["seconds"] + time.perf_counter() - t0
        is_best = run.finish_epoch(metrics)
        if self.on_epoch is not None:
            self.on_epoch(EpochReport(
                run.epoch, run.epochs, dict(metrics), is_best,
                lambda: dump_checkpoint(run.state(None, copy=False)),
                lambda: export_weights_npz(run.network),
                lambda: run.state(None, copy=True), layers))
        if not all(math.isfinite(v) for v in metrics.values()):
            bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
            self.failure = str(DivergedError(run.epoch, (
                f"{', '.join(bad)} became non-finite at epoch {run.epoch}")))
            return "diverged"
        grown = self._grown_loss(metrics["loss"])
        if grown is not None:
            self.failure = str(DivergedError(run.epoch, grown))
            return "diverged"
        if run.early_stopping is not None and run.early_stopping.should_stop:
            return "early_stopping"
        if self.deadline is not None and time.perf_counter() > self.deadline \
                and run.epoch < run.epochs:
            return "max_runtime"
        return None
