"""The learning-rate range test: its schedule, smoothing, stop rule and suggestion checked by
hand, and the training loop driven by it (every batch's rate applied, same seed same bits)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.errors import SpecError, SpecErrors
from core.lr_range_test import (
    LOSS_EXCEEDED,
    LOSS_NOT_FINITE,
    STEPS_DONE,
    RangeTest,
    RangeTestSpec,
    smooth,
    suggest,
)
from core.spec import Spec
from core.training import train
from core.training_run import RunSetup

DIGITS_LIKE = {
    "name": "lr-test",
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                         {"type": "dense", "units": 3}]},
    "optimizer": {"type": "sgd", "learning_rate": 0.1},
    "training": {"epochs": 1, "batch_size": 16, "validation_split": 0.0, "seed": 3,
                 "shuffle": True},
}


def blobs(n: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) * 0.5 + np.eye(3, 4)[y] * 3.0
    return X, y


# -- the schedule ----------------------------------------------------------------------------


def test_the_rate_rises_exponentially_from_min_lr_to_max_lr_exactly() -> None:
    lrs = RangeTestSpec(1e-3, 1e-1, 11).lrs()
    # lr_i = 1e-3 * 100 ** (i / 10) = 10 ** (-3 + i / 5)
    assert lrs[0] == 1e-3
    assert lrs[10] == pytest.approx(0.1, rel=1e-15)
    assert lrs[5] == pytest.approx(0.01, rel=1e-15)
    assert lrs[1] == pytest.approx(0.0015848931924611134, rel=1e-15)
    assert lrs[3] == pytest.approx(0.003981071705534973, rel=1e-15)
    ratios = lrs[1:] / lrs[:-1]
    assert np.allclose(ratios, 10 ** 0.2, rtol=1e-13)  # the same factor every batch


def test_the_range_is_checked_and_each_error_names_its_field() -> None:
    assert RangeTestSpec.from_dict({}, max_steps=1000) == RangeTestSpec(1e-7, 10.0, 100)
    assert RangeTestSpec.from_dict({"min_lr": 1e-4, "max_lr": 1, "steps": 50},
                                   max_steps=50) == RangeTestSpec(1e-4, 1.0, 50)
    cases = [({"min_lr": 0}, "min_lr"), ({"min_lr": -1e-3}, "min_lr"),
             ({"max_lr": 0}, "max_lr"), ({"min_lr": 1.0, "max_lr": 1.0}, "max_lr"),
             ({"min_lr": 2.0, "max_lr": 1.0}, "max_lr"), ({"steps": 9}, "steps"),
             ({"steps": 1001}, "steps"), ({"steps": 2.5}, "steps"),
             ({"min_lr": "big"}, "min_lr"), ({"steps": True}, "steps"),
             ({"min_lr": 1e-300, "max_lr": 1e300}, "max_lr")]  # the ratio overflows
    for body, field in cases:
        with pytest.raises(SpecError) as caught:
            RangeTestSpec.from_dict(body, max_steps=1000)
        assert caught.value.field == field, (body, caught.value)
    with pytest.raises(SpecErrors) as many:
        RangeTestSpec.from_dict({"min_lr": 5.0, "max_lr": 1.0, "steps": 5000}, max_steps=1000)
    assert [e.field for e in many.value.errors] == ["max_lr", "steps"]


def test_the_job_spec_holds_enough_epochs_and_no_schedule() -> None:
    spec = Spec.from_dict({**DIGITS_LIKE, "dataset": "builtin:digits",
                           "training": {**DIGITS_LIKE["training"], "validation_split": 0.2,
                                        "batch_size": 64, "epochs": 30,
                                        "early_stopping": {"patience": 2},
                                        "lr_schedule": {"type": "step", "step_size": 2}}})
    # digits: 1797 rows, 359 held out, 1438 train = 23 batches of 64 (the last one ragged)
    test = RangeTestSpec(1e-5, 1.0, 100)
    assert test.epochs(1797, 0.2, 3, 64) == 5  # 5 * 23 = 115 >= 100 > 4 * 23
    assert test.epochs(1797, 0.2, 3, "full") == 100
    job = test.job_spec(spec.to_dict(), 1797)
    parsed = Spec.from_dict(job)  # still a valid spec
    assert parsed.training.epochs == 5
    assert parsed.training.lr_schedule is None and parsed.training.early_stopping is None
    assert parsed.optimizer.learning_rate == 1e-5
    assert parsed.model == spec.model and parsed.training.seed == 3


# -- smoothing, stop rule, suggestion -------------------------------------------------------


def test_smoothing_is_the_bias_corrected_moving_average() -> None:
    s = smooth([1.0, 2.0, 2.0])
    assert s[0] == 1.0  # bias correction: the first value is the first loss
    # a1 = 0.98 * 0.02 + 0.02 * 2 = 0.0596; / (1 - 0.98**2) = 0.0396
    assert s[1] == pytest.approx(0.0596 / 0.0396, rel=1e-14)
    # a2 = 0.98 * 0.0596 + 0.04 = 0.098408; / (1 - 0.98**3) = 0.058808
    assert s[2] == pytest.approx(0.098408 / 0.058808, rel=1e-14)
    assert np.all(smooth([3.0] * 50) == pytest.approx(3.0, rel=1e-14))  # no pull to zero


def test_the_test_stops_once_the_smoothed_loss_passes_four_times_its_minimum() -> None:
    spec = RangeTestSpec(1e-4, 1.0, 200)
    losses = [2.0 - 0.01 * i for i in range(60)] + [50.0] * 100
    smoothed = smooth(losses)
    running_min = np.minimum.accumulate(smoothed)
    first_over = int(np.argmax(smoothed > 4 * running_min))
    assert 60 < first_over < 160  # the rule fires some batches into the blow-up

    test = RangeTest(spec)
    rates = [test.rate(loss) for loss in losses[:first_over + 1]]
    assert rates[:-1] == [float(v) for v in spec.lrs()[:first_over]]  # the schedule, used
    assert rates[-1] is None and test.stop_reason == LOSS_EXCEEDED
    assert len(test.losses) == first_over + 1  # the batch that crossed is recorded
    assert test.smoothed == pytest.approx(list(smoothed[:first_over + 1]), rel=1e-14)
    assert smoothed[first_over - 1] <= 4 * running_min[first_over - 1]
    assert test.rate(1.0) is None  # over is over
    assert test.finished("batch_lr") == LOSS_EXCEEDED


def test_a_non_finite_loss_stops_the_test_without_being_recorded() -> None:
    test = RangeTest(RangeTestSpec(1e-4, 1.0, 20))
    assert test.rate(1.0) == 1e-4
    assert test.rate(math.nan) is None
    assert test.stop_reason == LOSS_NOT_FINITE and test.losses == [1.0]
    test = RangeTest(RangeTestSpec(1e-4, 1.0, 20))
    assert test.rate(math.inf) is None and test.losses == []
    assert test.result() == {"series": [], "min_smoothed_loss": None, "suggestion": None}


def test_after_steps_batches_the_test_is_done() -> None:
    spec = RangeTestSpec(1e-4, 1e-2, 10)
    test = RangeTest(spec)
    assert [test.rate(1.0) for _ in range(10)] == [float(v) for v in spec.lrs()]
    assert test.rate(1.0) is None and test.stop_reason == STEPS_DONE
    assert len(test.losses) == 10
    fresh = RangeTest(spec)
    for _ in range(10):
        fresh.rate(1.0)
    assert fresh.finished("epochs_done") == STEPS_DONE  # the loop ran out first
    assert RangeTest(spec).finished("cancelled") == "cancelled"
    assert RangeTest(spec).finished("diverged") == LOSS_NOT_FINITE


def test_the_suggestion_is_the_steepest_descent_of_the_smoothed_loss() -> None:
    lrs = list(RangeTestSpec(1e-4, 1.0, 30).lrs())
    # flat, then falling with the steepest step from index 12 to 13, then rising
    s = [3.0] * 8 + [2.9, 2.8, 2.6, 2.3, 2.0, 1.2, 1.0, 0.9, 0.85] + [1.0, 2.0, 4.0, 8.0]
    s += [9.0] * (30 - len(s))
    assert suggest(lrs, s, 30) == 12  # the left end of the steepest difference
    # the trims: the first steps // 10 = 3 points and the last 5 are left out
    early = [5.0, 1.0, 1.0, 1.0, 0.9] + [0.9 - 0.001 * i for i in range(25)]
    assert suggest(lrs, early, 30) == 3  # 5.0 -> 1.0 sits in the trimmed start
    assert suggest(lrs, [1.0 + i for i in range(30)], 30) is None  # never falls
    assert suggest(lrs[:7], [3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2], 30) is None  # too few points


# -- driving the training loop --------------------------------------------------------------


def run(spec: dict[str, Any], test_spec: RangeTestSpec, X: np.ndarray,
        y: np.ndarray) -> tuple[Any, RangeTest]:
    job = test_spec.job_spec(Spec.from_dict(spec).to_dict(), X.shape[0])
    test = RangeTest(test_spec)
    result = train(job, X, y, batch_lr=test.rate)
    return result, test


def test_each_batch_steps_with_its_scheduled_rate() -> None:
    """Batch 1's recorded loss is the loss after ONE plain SGD step at min_lr on batch 0."""
    X, y = blobs()
    spec = {**DIGITS_LIKE, "training": {**DIGITS_LIKE["training"], "shuffle": False}}
    test_spec = RangeTestSpec(0.05, 5.0, 10)
    _, test = run(spec, test_spec, X, y)

    setup = RunSetup(Spec.from_dict(test_spec.job_spec(Spec.from_dict(spec).to_dict(), 160)),
                     X, y)
    net, loss = setup.network, setup.loss
    xb, yb = setup.train_rows.rows(slice(0, 16))
    assert loss.forward(net.forward(xb, training=True), yb) == test.losses[0]
    net.backward(loss.backward())
    net.flat_params -= np.float32(0.05) * net.flat_grads
    xb, yb = setup.train_rows.rows(slice(16, 32))
    second = loss.forward(net.forward(xb, training=True), yb)
    assert second == pytest.approx(test.losses[1], rel=1e-6)
    assert test.lrs == [float(v) for v in test_spec.lrs()]


def test_a_rate_too_high_ends_the_run_by_the_rule_and_nothing_else() -> None:
    X, y = blobs()
    test_spec = RangeTestSpec(1e-4, 1e4, 100)  # plain SGD at 1e4 blows up
    result, test = run(DIGITS_LIKE, test_spec, X, y)
    assert result.stop_reason == "batch_lr"
    assert test.stop_reason in (LOSS_EXCEEDED, LOSS_NOT_FINITE)
    assert 10 < len(test.losses) < 100
    if test.stop_reason == LOSS_EXCEEDED:
        assert test.smoothed[-1] > 4 * min(test.smoothed)
    assert all(s <= 4 * min(test.smoothed[:i + 1]) for i, s in enumerate(test.smoothed[:-1]))
    out = test.result()
    assert out["suggestion"] is not None
    assert 1e-4 <= out["suggestion"]["lr"] <= 1e4
    assert len(out["series"]) == len(test.losses)


def test_the_same_seed_gives_the_same_series_bit_for_bit() -> None:
    X, y = blobs()
    spec = {**DIGITS_LIKE, "model": {"layers": [
        {"type": "dense", "units": 16, "activation": "relu"}, {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 3}]}}
    test_spec = RangeTestSpec(1e-3, 10.0, 40)  # 40 batches over 4 epochs of 10
    first = run(spec, test_spec, X, y)[1].result()
    second = run(spec, test_spec, X, y)[1].result()
    assert first == second and len(first["series"]) > 20
    other = {**spec, "training": {**spec["training"], "seed": 4}}
    assert run(other, test_spec, X, y)[1].result()["series"] != first["series"]
