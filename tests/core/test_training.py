"""The training loop: metrics, dtype, split, standardization, stops, early stopping, penalties."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest

from core.batching import split_indices
from core.checkpoint import load_state
from core.training import EpochReport, train

MLP = [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 3}]


def make_spec(layers: list[dict[str, Any]] | None = None, loss: str = "cross_entropy",
              optimizer: dict[str, Any] | None = None, **training: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "t",
        "model": {"layers": layers or MLP},
        "loss": {"type": loss},
        "optimizer": optimizer or {"type": "adam", "learning_rate": 0.01},
        "training": {"epochs": 3, "batch_size": 16, "validation_split": 0.25, **training},
    }
    return spec


def blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable Gaussian blobs in 4-D, labels 0..2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) * 0.5 + np.eye(3, 4)[y] * 3.0 + 5.0
    return X, y


def test_history_holds_the_epoch_metrics_of_a_classification_run() -> None:
    X, y = blobs()
    reports: list[EpochReport] = []
    result = train(make_spec(epochs=4), X, y, on_epoch=reports.append)
    assert result.stop_reason == "epochs_done"
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert all(r.epochs == 4 for r in reports)
    assert len(result.history) == 4
    for metrics in result.history:
        assert list(metrics) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
        assert metrics["lr"] == 0.01 and metrics["seconds"] > 0.0
        assert 0.0 <= metrics["accuracy"] <= 1.0
    # 90 training rows: accuracy is a multiple of 1/90, val_accuracy of 1/30
    assert result.history[-1]["accuracy"] * 90 == pytest.approx(
        round(result.history[-1]["accuracy"] * 90), abs=1e-9)
    assert result.history[-1]["val_accuracy"] * 30 == pytest.approx(
        round(result.history[-1]["val_accuracy"] * 30), abs=1e-9)
    assert result.history[-1]["val_accuracy"] == 1.0  # separable blobs


def test_regression_run_reports_no_accuracy_and_learns() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]))[:, None]
    spec = make_spec([{"type": "dense", "units": 1}], loss="mse", epochs=30,
                     optimizer={"type": "sgd", "learning_rate": 0.1})
    result = train(spec, X, y)
    assert "accuracy" not in result.history[0] and "val_accuracy" not in result.history[0]
    assert result.history[-1]["val_loss"] < 1e-4 < result.history[0]["loss"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_run_dtype_is_kept_everywhere(dtype: str) -> None:
    X, y = blobs()
    result = train(make_spec(dtype=dtype), X.astype(np.float64), y)
    net = result.network
    assert net.flat_params.dtype == np.dtype(dtype)
    assert all(p.dtype == np.dtype(dtype) for p in net.params.values())
    assert net.preprocessing.mean.dtype == np.dtype(dtype)
    assert net.predict(X).dtype == np.dtype(dtype)
    optim = result.state.optimizer
    assert optim["exp_avg/all"].dtype == np.dtype(dtype)


def test_validation_split_holds_out_the_last_fraction_of_a_seeded_permutation() -> None:
    train_idx, val_idx = split_indices(100, 0.2, seed=7)
    assert len(train_idx) == 80 and len(val_idx) == 20
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(100))
    perm = np.random.default_rng([7, 1]).permutation(100)
    np.testing.assert_array_equal(val_idx, np.sort(perm[80:]))
    again = split_indices(100, 0.2, seed=7)
    np.testing.assert_array_equal(again[1], val_idx)
    assert not np.array_equal(split_indices(100, 0.2, seed=8)[1], val_idx)
    assert len(split_indices(100, 0.0, seed=7)[1]) == 0


def test_standardization_is_fitted_on_training_rows_only() -> None:
    X, y = blobs()
    X[:, 0] += np.arange(len(X))  # a trend: train and validation means differ
    result = train(make_spec(epochs=1, seed=3), X, y)
    train_idx, _ = split_indices(len(X), 0.25, seed=3)
    prep = result.network.preprocessing
    np.testing.assert_allclose(prep.mean, X[train_idx].mean(axis=0), rtol=1e-6)
    assert abs(prep.mean[0] - X[:, 0].mean()) > 0.1
    np.testing.assert_allclose(prep.std, X[train_idx].std(axis=0), rtol=1e-6)
    unstandardized = train(make_spec(epochs=1, standardize=False), X, y)
    assert unstandardized.network.preprocessing is None


def test_full_batch_takes_one_step_per_epoch() -> None:
    X, y = blobs()
    result = train(make_spec(epochs=5, batch_size="full"), X, y)
    assert result.state.optimizer["step"] == 5
    mini = train(make_spec(epochs=5, batch_size=16), X, y)
    assert mini.state.optimizer["step"] == 5 * 6  # ceil(90 / 16)


def test_init_params_replace_the_initial_weights() -> None:
    X, y = blobs()
    first = train(make_spec(epochs=1), X, y).network
    init = {k: np.full_like(v, 0.125) for k, v in first.params.items()}
    # cancelled before the first batch: the network holds exactly the initial weights
    result = train(make_spec(epochs=2), X, y, init_params=init, should_stop=lambda: True)
    assert result.stop_reason == "cancelled"
    for name, value in result.network.params.items():
        np.testing.assert_array_equal(value, init[name])
    trained = train(make_spec(epochs=1), X, y, init_params=init).network.params["0.weight"]
    assert not np.array_equal(trained, first.params["0.weight"])


def test_lr_reports_the_rate_used_in_each_epoch_of_a_schedule() -> None:
    X, y = blobs()
    spec = make_spec(epochs=4, lr_schedule={"type": "step", "step_size": 1, "gamma": 0.5})
    result = train(spec, X, y)
    assert [h["lr"] for h in result.history] == [0.01, 0.005, 0.0025, 0.00125]


def test_should_stop_is_polled_between_batches_and_cancels_mid_epoch() -> None:
    X, y = blobs()
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) == 9  # 6 batches per epoch: epoch 1, then 2 batches of epoch 2

    result = train(make_spec(epochs=5), X, y, should_stop=should_stop)
    assert result.stop_reason == "cancelled"
    assert len(result.history) == 1
    assert result.state.partial is not None and result.state.partial["batch"] == 2
    assert result.state.optimizer["step"] == 8
    assert load_state(result.checkpoint()).partial == result.state.partial


def test_max_runtime_stops_the_run() -> None:
    X, y = blobs()
    result = train(make_spec(epochs=50, max_runtime_s=1e-9), X, y)
    assert result.stop_reason == "max_runtime"
    assert len(result.history) == 0
    assert result.state.optimizer["step"] == 0


def test_non_finite_loss_stops_with_diverged_and_names_the_epoch() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)) * 100.0
    y = rng.standard_normal((64, 1)) * 1e4
    spec = make_spec([{"type": "dense", "units": 8, "activation": "relu"},
                      {"type": "dense", "units": 1}], loss="mse", epochs=20, standardize=False,
                     optimizer={"type": "sgd", "learning_rate": 10.0})
    result = train(spec, X, y)
    assert result.stop_reason == "diverged"
    assert result.failure is not None
    epoch = len(result.history) + 1
    assert f"epoch {epoch}" in result.failure
    assert epoch < 20


def _finite_blow_up() -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Plain SGD past its stable step on a linear regression: the loss grows about 5e4-fold
    per epoch and stays finite in float64 (the 0.7 -> 4.5e22 of issue 19)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0])
    spec = make_spec([{"type": "dense", "units": 1}], loss="mse", epochs=4, batch_size=8,
                     validation_split=0.0, dtype="float64",
                     optimizer={"type": "sgd", "learning_rate": 1.2})
    return spec, X, y


def test_a_finite_blow_up_past_the_divergence_factor_ends_diverged() -> None:
    spec, X, y = _finite_blow_up()
    unguarded = train(spec, X, y)
    losses = [h["loss"] for h in unguarded.history]
    assert unguarded.stop_reason == "epochs_done"  # every value finite: nothing else stops it
    assert all(np.isfinite(losses)) and losses[1] > 1e4 * losses[0] > losses[1] / 1e3
    result = train(spec, X, y, divergence_factor=1e4)
    assert result.stop_reason == "diverged"
    assert len(result.history) == 2  # epoch 2 is the first past 1e4 x epoch 1's loss
    assert result.failure is not None
    assert "at epoch 2 is more than 10000 times the first epoch's" in result.failure
    # below the factor the same run goes on
    assert train(spec, X, y, divergence_factor=1e12).stop_reason == "epochs_done"


def test_the_divergence_factor_compares_with_the_first_epoch_across_a_resume() -> None:
    spec, X, y = _finite_blow_up()
    first = train({**spec, "training": {**spec["training"], "epochs": 1}}, X, y)
    resumed = train(spec, X, y, resume=first.checkpoint(), divergence_factor=1e4)
    assert resumed.stop_reason == "diverged"
    assert len(resumed.history) == 2


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    X, y = blobs()
    frozen = {"type": "sgd", "learning_rate": 1e-30}  # steps vanish in float32 rounding
    es = {"monitor": "val_loss", "patience": 2, "min_delta": 0.0, "restore_best": True}
    result = train(make_spec(epochs=10, optimizer=frozen, early_stopping=es), X, y)
    assert result.stop_reason == "early_stopping"
    assert len(result.history) == 3  # best at 1, then 2 epochs without improvement


def _noisy_overfit() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    # Random labels: the training loss falls while the validation loss climbs.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 10))
    y = rng.integers(0, 3, 80)
    layers = [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 3}]
    return X, y, make_spec(layers, epochs=12, batch_size=8)


@pytest.mark.parametrize("cancel", [False, True])
def test_restore_best_applies_at_epochs_done_and_at_cancel(cancel: bool) -> None:
    X, y, spec = _noisy_overfit()
    spec["training"]["early_stopping"] = {"monitor": "val_loss", "patience": 100,
                                          "restore_best": True}
    weights: dict[int, dict[str, np.ndarray]] = {}

    def on_epoch(report: EpochReport) -> None:
        with np.load(io.BytesIO(report.weights_npz())) as npz:
            weights[report.epoch] = {k: npz[k] for k in npz.files if not k.startswith("__")}

    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return cancel and len(calls) == 8 * 10 + 3  # mid-epoch 11

    result = train(spec, X, y, on_epoch=on_epoch, should_stop=should_stop)
    assert result.stop_reason == ("cancelled" if cancel else "epochs_done")
    val = [h["val_loss"] for h in result.history]
    best = int(np.argmin(val)) + 1
    assert best < len(val)  # the set-up must overfit, else the test proves nothing
    assert result.restored_epoch == best
    # what a final checkpoint records: the restored epoch's metrics, not the last epoch's
    assert result.weights_metrics == result.history[best - 1] != result.history[-1]
    for name, value in result.network.params.items():
        np.testing.assert_array_equal(value, weights[best][name])
    # the resumable state keeps the weights the run actually stopped with
    assert not np.array_equal(result.state.params["0.weight"], weights[best]["0.weight"])


def test_l2_penalty_shrinks_the_weights() -> None:
    X, y, spec = _noisy_overfit()
    plain = train(spec, X, y).network.params["0.weight"]
    spec["regularization"] = {"l1": 0.0, "l2": 0.1}
    shrunk = train(spec, X, y).network.params["0.weight"]
    assert np.linalg.norm(shrunk) < 0.8 * np.linalg.norm(plain)


def test_clip_grad_norm_bounds_every_step() -> None:
    X, y = blobs()
    spec = make_spec(epochs=1, batch_size=16, clip_grad_norm=1e-3,
                     optimizer={"type": "sgd", "learning_rate": 1.0})
    initial = train(spec, X, y, should_stop=lambda: True).network.flat_params
    start = initial.astype(np.float64)
    result = train(spec, X, y)
    moved = np.linalg.norm(result.network.flat_params.astype(np.float64) - start)
    assert 0.0 < moved <= 6 * 1e-3 * (1 + 1e-4)


def test_dict_and_spec_object_give_the_same_run() -> None:
    from core.spec import Spec

    X, y = blobs()
    spec = make_spec(epochs=2)
    a = train(spec, X, y).network.flat_params
    b = train(Spec.from_dict(spec), X, y).network.flat_params
    assert a.tobytes() == b.tobytes()


def test_early_stopping_counts_patience_and_min_delta_in_the_monitored_direction() -> None:
    from core.early_stopping import EarlyStopping
    from core.monitors import resolve_mode

    assert resolve_mode("val_accuracy") == "max" and resolve_mode("val_loss") == "min"
    assert resolve_mode("val_loss", "max") == "max"
    es = EarlyStopping("val_loss", "auto", patience=2, min_delta=0.1)
    losses = [1.0, 0.95, 0.85, 0.9, 0.8]  # 0.95 is within min_delta: no improvement
    flags = [es.update(i + 1, {"val_loss": v}) for i, v in enumerate(losses)]
    assert flags == [True, False, True, False, False]
    assert es.best == 0.85 and es.best_epoch == 3 and es.wait == 2 and es.should_stop
    acc = EarlyStopping("val_accuracy", patience=1)
    acc.update(1, {"val_accuracy": 0.5})
    assert acc.update(2, {"val_accuracy": 0.6}) and not acc.should_stop
    assert not acc.update(3, {"val_accuracy": 0.6}) and acc.should_stop
    # without a validation split val_x falls back to x
    fallback = EarlyStopping("val_loss")
    assert fallback.update(1, {"loss": 2.0}) and fallback.best == 2.0


def test_accuracy_counts_argmax_for_cross_entropy_and_sign_for_bce() -> None:
    from core.metrics import correct_count

    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0]])
    assert correct_count(logits, np.array([0, 1, 0]), "cross_entropy") == (2, 3)
    bce = np.array([[0.3, -1.0], [-0.2, 2.0]])
    assert correct_count(bce, np.array([[1.0, 0.0], [1.0, 1.0]]), "binary_cross_entropy") == (3, 4)


def test_binary_cross_entropy_run_reports_accuracy() -> None:
    X, y = blobs()
    labels = (y == 0).astype(np.float64)
    spec = make_spec([{"type": "dense", "units": 8, "activation": "relu"},
                      {"type": "dense", "units": 1}], loss="binary_cross_entropy", epochs=10)
    result = train(spec, X, labels)
    assert result.history[-1]["val_accuracy"] == 1.0
    assert result.network.predict(X[:3]).shape == (3, 1)


def test_reduce_on_plateau_is_stepped_with_the_monitored_validation_loss() -> None:
    X, y = blobs()
    slow = {"type": "sgd", "learning_rate": 0.001}
    # a 50% relative threshold: only the first epoch (against inf) counts as an improvement
    schedule = {"type": "reduce_on_plateau", "factor": 0.5, "patience": 0, "threshold": 0.5}
    result = train(make_spec(epochs=4, optimizer=slow, lr_schedule=schedule), X, y)
    assert [h["lr"] for h in result.history] == [0.001, 0.001, 0.0005, 0.00025]
    assert result.history[-1]["val_loss"] > 0.5 * result.history[0]["val_loss"]


def test_bad_labels_and_empty_data_are_refused_with_the_row_named() -> None:
    from core.errors import DatasetError

    X, y = blobs()
    y[4] = -1
    with pytest.raises(DatasetError, match="row 5"):
        train(make_spec(), X, y)
    y[4] = 3  # the output layer has 3 units
    with pytest.raises(DatasetError, match="row 5"):
        train(make_spec(), X, y)
    with pytest.raises(DatasetError, match="rows"):
        train(make_spec(), X[:0], y[:0])
    with pytest.raises(DatasetError, match="rows"):
        train(make_spec(), X, y[:-1])


def test_init_params_of_another_model_are_a_checkpoint_error() -> None:
    from core.errors import CheckpointError

    X, y = blobs()
    with pytest.raises(CheckpointError, match="init_params do not fit"):
        train(make_spec(), X, y, init_params={"0.weight": np.zeros((2, 2))})
    other = train(make_spec([{"type": "dense", "units": 3}], epochs=1), X, y).checkpoint()
    with pytest.raises(CheckpointError, match="does not fit"):
        train(make_spec(), X, y, resume=other)


def test_a_callers_runtime_budget_stops_the_run_and_stays_out_of_its_checkpoints() -> None:
    from core.checkpoint import load_state

    X = np.random.default_rng(0).standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    spec = {"model": {"layers": [{"type": "dense", "units": 2}]},
            "training": {"epochs": 1_000_000, "batch_size": 8, "validation_split": 0.0}}
    result = train(spec, X, y, max_runtime_s=0.3)
    assert result.stop_reason == "max_runtime" and 0 < result.state.epoch < 1_000_000
    assert load_state(result.checkpoint()).spec["training"]["max_runtime_s"] is None
    tighter = {**spec, "training": {**spec["training"], "max_runtime_s": 0.1}}
    started = time.perf_counter()
    assert train(tighter, X, y, max_runtime_s=60.0).stop_reason == "max_runtime"
    assert time.perf_counter() - started < 30  # the spec's 0.1 s, not the caller's minute
