"""Per-layer diagnostics (core/diagnostics.py): values against a hand computation, the
warning rule, and that they change nothing: same bits on or off, resumes included."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.checkpoint import load_state
from core.diagnostics import DEAD_LIMIT, STREAK, by_layer, dead_fraction, warnings
from core.training import EpochReport, train


def tiny_spec(**training: Any) -> dict[str, Any]:
    return {
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "relu"},
                             {"type": "dense", "units": 2}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "sgd", "learning_rate": 0.1},
        "training": {"epochs": 2, "batch_size": 2, "shuffle": False, "validation_split": 0.0,
                     "standardize": False, "dtype": "float64", **training},
    }


# Hidden unit 2 has bias -100: zero for every sample, a dead unit.
W1 = np.array([[0.5, -0.3, 0.2], [0.1, 0.4, -0.6]])
B1 = np.array([0.1, -0.2, -100.0])
W2 = np.array([[0.3, -0.2], [0.7, 0.5], [-0.4, 0.6]])
B2 = np.array([0.05, -0.05])
X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7], [2.0, 1.0]])
Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 2.0]])


def by_hand(epochs: int) -> list[dict[int, dict[str, float]]]:
    """Plain NumPy: forward, MSE (torch's mean over every element), backward, SGD step."""
    w1, b1, w2, b2 = W1.copy(), B1.copy(), W2.copy(), B2.copy()
    out = []
    for _ in range(epochs):
        start = [np.concatenate([w1.ravel(), b1]), np.concatenate([w2.ravel(), b2])]
        squares = [0.0, 0.0]
        batches = 0
        for lo in range(0, 4, 2):
            x, y = X[lo:lo + 2], Y[lo:lo + 2]
            z = x @ w1 + b1
            h = np.maximum(z, 0.0)
            o = h @ w2 + b2
            do = 2.0 * (o - y) / o.size
            gw2, gb2 = h.T @ do, do.sum(axis=0)
            dh = (do @ w2.T) * (z > 0)
            gw1, gb1 = x.T @ dh, dh.sum(axis=0)
            squares[0] += float(np.sum(gw1 ** 2) + np.sum(gb1 ** 2))
            squares[1] += float(np.sum(gw2 ** 2) + np.sum(gb2 ** 2))
            batches += 1
            w1, b1, w2, b2 = w1 - 0.1 * gw1, b1 - 0.1 * gb1, w2 - 0.1 * gw2, b2 - 0.1 * gb2
            last_h = h
        end = [np.concatenate([w1.ravel(), b1]), np.concatenate([w2.ravel(), b2])]
        dead = float(np.mean(np.all(last_h == 0.0, axis=0)))
        out.append({
            i: {"weight_norm": float(np.linalg.norm(end[i])),
                "grad_norm": math.sqrt(squares[i] / batches),
                "update_ratio": float(np.linalg.norm(end[i] - start[i])
                                      / np.linalg.norm(start[i])),
                **({"dead_fraction": dead} if i == 0 else {})}
            for i in (0, 1)})
    return out


def run(spec: dict[str, Any], X_: Any = X, y_: Any = Y, **kwargs: Any) -> tuple[Any, list[Any]]:
    reports: list[EpochReport] = []
    result = train(spec, X_, y_, on_epoch=reports.append, **kwargs)
    return result, reports


def test_values_match_a_hand_computation_on_a_tiny_float64_network() -> None:
    init = {"0.weight": W1, "0.bias": B1, "1.weight": W2, "1.bias": B2}
    _, reports = run(tiny_spec(), init_params=init)
    expected = by_hand(2)
    assert len(reports) == 2
    for report, want in zip(reports, expected, strict=True):
        rows = {r["layer"]: r for r in report.diagnostics or []}
        assert sorted(rows) == [0, 1]
        assert rows[0]["type"] == "dense" and "dead_fraction" not in rows[1]
        for layer, values in want.items():
            for name, value in values.items():
                assert rows[layer][name] == pytest.approx(value, rel=1e-12, abs=1e-15), \
                    (report.epoch, layer, name)
    # Unit 2 (bias -100) is dead throughout; unit 1 is negative for both rows of the last
    # batch, (0.3, -0.7) and (2, 1): 2 of 3 zero for the whole batch.
    assert reports[0].diagnostics[0]["dead_fraction"] == pytest.approx(2 / 3)


def test_off_in_the_spec_means_no_diagnostics() -> None:
    _, reports = run(tiny_spec(diagnostics=False))
    assert [r.diagnostics for r in reports] == [None, None]


def digits_like(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, n)
    X = rng.standard_normal((n, 12)) + np.eye(4, 12)[y] * 2.0
    return X.astype(np.float32), y


def mlp_spec(**training: Any) -> dict[str, Any]:
    return {
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dropout", "rate": 0.2},
                             {"type": "batch_norm"},
                             {"type": "activation", "activation": "relu"},
                             {"type": "dense", "units": 4}]},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "regularization": {"l2": 1e-3},
        "training": {"epochs": 4, "batch_size": 32, "seed": 7, "clip_grad_norm": 5.0,
                     **training},
    }


def test_diagnostics_do_not_change_the_training_result() -> None:
    X_, y_ = digits_like()
    on, reports = run(mlp_spec(diagnostics=True), X_, y_)
    off, _ = run(mlp_spec(diagnostics=False), X_, y_)
    assert on.network.flat_params.tobytes() == off.network.flat_params.tobytes()
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in on.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in off.history]
    rows = reports[-1].diagnostics
    assert rows is not None
    # dense, batch_norm and the last dense have parameters; the activation layer is a ReLU.
    assert [(r["layer"], r["type"]) for r in rows] == [
        (0, "dense"), (2, "batch_norm"), (3, "activation"), (4, "dense")]
    assert set(rows[2]) == {"layer", "type", "dead_fraction"}
    for r in (rows[0], rows[1], rows[3]):
        assert r["weight_norm"] > 0 and r["grad_norm"] > 0 and 0 < r["update_ratio"] < 1


def test_a_resumed_run_reports_the_same_diagnostics() -> None:
    X_, y_ = digits_like()
    saved: dict[int, bytes] = {}
    reports: list[EpochReport] = []

    def keep(report: EpochReport) -> None:
        reports.append(report)
        saved[report.epoch] = report.checkpoint()

    train(mlp_spec(), X_, y_, on_epoch=keep)
    _, resumed = run(mlp_spec(), X_, y_, resume=saved[2])
    assert [r.epoch for r in resumed] == [3, 4]
    assert [r.diagnostics for r in resumed] == [r.diagnostics for r in reports[2:]]


def test_a_run_stopped_mid_epoch_resumes_with_diagnostics_of_the_rest() -> None:
    X_, y_ = digits_like()
    straight, reports = run(mlp_spec(), X_, y_)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 10  # epoch 2, batch 4 of 7

    stopped, _ = run(mlp_spec(), X_, y_, should_stop=stop)
    assert stopped.stop_reason == "cancelled"
    assert load_state(stopped.checkpoint()).partial is not None
    resumed, rest = run(mlp_spec(), X_, y_, resume=stopped.checkpoint())
    assert resumed.network.flat_params.tobytes() == straight.network.flat_params.tobytes()
    assert [r.epoch for r in rest] == [2, 3, 4]
    # The interrupted epoch covers the batches run after the resume; later epochs are exact.
    assert all(r["grad_norm"] > 0 for r in rest[0].diagnostics if "grad_norm" in r)
    assert [r.diagnostics for r in rest[1:]] == [r.diagnostics for r in reports[2:]]


def test_dead_fraction_counts_units_zero_for_every_sample_and_position() -> None:
    dense = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert dead_fraction(dense) == pytest.approx(2 / 3)
    conv = np.zeros((2, 4, 3, 3))
    conv[1, 0, 2, 2] = 0.5  # channel 0 fires once, at one position of one sample
    assert dead_fraction(conv) == 0.75
    assert dead_fraction(None) is None


def layer(i: int, ratio: float | None = 1e-3, dead: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"layer": i, "type": "dense", "update_ratio": ratio}
    if dead is not None:
        row["dead_fraction"] = dead
    return row


def test_an_update_ratio_out_of_range_warns_after_three_consecutive_epochs() -> None:
    low = [(e, [layer(0, 1e-6), layer(1)]) for e in (1, 2)]
    assert warnings(low) == []
    found = warnings([*low, (3, [layer(0, 2e-6), layer(1)])])
    assert [(w["layer"], w["kind"], w["epoch"]) for w in found] == [(0, "update_ratio_low", 3)]
    assert "below 1e-05" in found[0]["message"]
    # A good epoch or a gap in the numbering breaks the streak; None is no evidence either way.
    assert warnings([(1, [layer(0, 0.5)]), (2, [layer(0, 0.5)]), (3, [layer(0, 1e-3)]),
                     (4, [layer(0, 0.5)])]) == []
    assert warnings([(1, [layer(0, 0.5)]), (2, [layer(0, 0.5)]), (4, [layer(0, 0.5)])]) == []
    assert warnings([(e, [layer(0, None)]) for e in (1, 2, 3)]) == []
    high = warnings([(e, [layer(0, 0.5)]) for e in range(1, 3 + STREAK)])
    assert [(w["kind"], w["epoch"]) for w in high] == [("update_ratio_high", STREAK)]


def test_dead_units_warn_once_past_half_and_earlier_warnings_are_kept() -> None:
    assert warnings([(1, [layer(0, dead=DEAD_LIMIT)])]) == []
    first = warnings([(1, [layer(0, dead=0.75)]), (2, [layer(0, dead=0.9)])])
    assert [(w["kind"], w["epoch"], w["value"]) for w in first] == [("dead_units", 1, 0.75)]
    # Continuing: the stored warnings come first and are not raised again.
    again = warnings([(5, [layer(0, dead=0.8), layer(1, dead=0.6)])], raised=first)
    assert [(w["layer"], w["epoch"]) for w in again] == [(0, 1), (1, 5)]


def test_by_layer_turns_epoch_rows_into_series() -> None:
    epochs = [(1, [{"layer": 0, "type": "dense", "weight_norm": 1.0, "update_ratio": 0.1},
                   {"layer": 1, "type": "activation", "dead_fraction": 0.5}]),
              (2, [{"layer": 0, "type": "dense", "weight_norm": 2.0, "update_ratio": None,
                    "dead_fraction": 0.25},
                   {"layer": 1, "type": "activation", "dead_fraction": 0.0}])]
    assert by_layer(epochs) == [
        {"layer": 0, "type": "dense", "epochs": [1, 2], "weight_norm": [1.0, 2.0],
         "update_ratio": [0.1, None], "dead_fraction": [None, 0.25]},
        {"layer": 1, "type": "activation", "epochs": [1, 2], "dead_fraction": [0.5, 0.0]}]
    assert by_layer(epochs, layer=1) == by_layer(epochs)[1:]
    assert by_layer(epochs, layer=7) == [] and by_layer([]) == []


def test_a_conv_layers_dead_channels_are_read_from_its_last_batch() -> None:
    """lr 0 and one full batch: the last batch's activations are a forward pass of the
    initial weights over the training rows, which the test recomputes on its own."""
    from core.network import build_network

    rng = np.random.default_rng(5)
    X_ = rng.standard_normal((40, 1, 6, 6))
    y_ = rng.integers(0, 3, 40)
    layers = [{"type": "conv2d", "filters": 6, "kernel_size": 3, "activation": "relu",
               "bias_init": {"type": "constant", "value": -1.5}},
              {"type": "flatten"}, {"type": "dense", "units": 3}]
    spec = {"model": {"layers": layers}, "optimizer": {"type": "sgd", "learning_rate": 0.0},
            "training": {"epochs": 1, "batch_size": "full", "shuffle": False, "seed": 2,
                         "validation_split": 0.0, "standardize": False, "dtype": "float64"}}
    _, reports = run(spec, X_, y_)
    rows = {r["layer"]: r for r in reports[0].diagnostics or []}
    net = build_network(spec["model"], (1, 6, 6), seed=2, dtype="float64")
    out = net.layers[0].forward(X_, training=True)
    expected = float(np.mean(np.all(out == 0.0, axis=(0, 2, 3))))
    assert 0.0 < expected < 1.0  # some channels died, not all: the test can tell
    assert rows[0]["dead_fraction"] == expected
    assert rows[0]["update_ratio"] == 0.0 and rows[0]["grad_norm"] > 0.0
