"""Learning-rate schedules: hand-worked sequences, torch 2.13 golden runs, state round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.errors import SpecError
from core.schedules import (
    SCHEDULES,
    CosineAnnealingLR,
    ExponentialLR,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    WarmupSchedule,
    make_schedule,
)
from core.spec import Spec, schedule_params

GOLDEN = json.loads((Path(__file__).parent / "golden" / "optim_schedules.json").read_text())


class FakeOptimizer:
    """Anything with a settable ``lr`` can be scheduled."""

    def __init__(self, lr: float) -> None:
        self.lr = lr


def _run(schedule: Schedule, epochs: int, metrics: list[float] | None = None) -> list[float]:
    """The learning rate each epoch trains with, stepping after the epoch as the trainer does."""
    lrs = []
    for epoch in range(epochs):
        lrs.append(schedule.lr)
        schedule.step(None if metrics is None else metrics[epoch])
    return lrs


def _spec(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def test_step_by_hand() -> None:
    opt = FakeOptimizer(1.0)
    assert _run(StepLR(opt, step_size=2, gamma=0.5), 7) == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_exponential_by_hand() -> None:
    opt = FakeOptimizer(2.0)
    np.testing.assert_allclose(_run(ExponentialLR(opt, gamma=0.5), 4), [2, 1, 0.5, 0.25],
                               rtol=1e-15)


def test_cosine_by_hand_and_its_chain_equals_the_closed_form() -> None:
    opt = FakeOptimizer(1.0)
    lrs = _run(CosineAnnealingLR(opt, t_max=4, eta_min=0.0), 13)
    half = 0.5 * (1 + math.cos(math.pi / 4))
    np.testing.assert_allclose(lrs[:5], [1.0, half, 0.5, 1 - half, 0.0], atol=1e-15)
    # past t_max torch's cosine climbs back up: period 2 * t_max
    closed = [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(13)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12, atol=1e-15)


def test_warmup_ramps_by_k_over_w_plus_one_then_starts_the_main_schedule() -> None:
    opt = FakeOptimizer(0.4)
    schedule = make_schedule(_spec(type="step", step_size=2, gamma=0.5, warmup_epochs=3), opt,
                             epochs=9)
    assert isinstance(schedule, WarmupSchedule)
    np.testing.assert_allclose(_run(schedule, 9),
                               [0.1, 0.2, 0.3, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1], rtol=1e-15)


def test_warmup_alone_with_a_constant_schedule() -> None:
    opt = FakeOptimizer(0.3)
    schedule = make_schedule(_spec(type="constant", warmup_epochs=2), opt, epochs=5)
    np.testing.assert_allclose(_run(schedule, 5), [0.1, 0.2, 0.3, 0.3, 0.3], rtol=1e-15)


def test_cosine_t_max_defaults_to_the_epochs_after_warmup() -> None:
    opt = FakeOptimizer(1.0)
    schedule = make_schedule(_spec(type="cosine", warmup_epochs=2), opt, epochs=10)
    lrs = _run(schedule, 10)
    assert lrs[2] == 1.0
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)), rel=1e-12)


def test_reduce_on_plateau_by_hand() -> None:
    opt = FakeOptimizer(1.0)
    schedule = ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1, min_lr=0.2)
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5]
    # bad epochs: e3 1, e4 2 > patience -> 0.5 then cooldown swallows e5; e6 1, e7 2 -> 0.25;
    # e8 improves (and spends the cooldown); e9 1, e10 2 -> max(0.125, min_lr 0.2) = 0.2;
    # e11 is swallowed by the cooldown that e10 started
    assert _run(schedule, 11, metrics)[1:] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2]
    assert (opt.lr, schedule.num_bad_epochs) == (0.2, 0)
    with pytest.raises(ValueError, match="metric"):
        schedule.step(None)


def test_no_schedule_is_a_constant_rate() -> None:
    opt = FakeOptimizer(0.3)
    schedule = make_schedule(None, opt, epochs=5)
    assert _run(schedule, 5) == [0.3] * 5
    assert schedule.state_dict() == {"last_epoch": 5, "base_lr": 0.3, "lr": 0.3}


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[str(c["spec"]) for c in GOLDEN["cases"]])
def test_thirty_epochs_match_torch(case: dict[str, Any]) -> None:
    opt = FakeOptimizer(case["base_lr"])
    schedule = make_schedule(_spec(**case["spec"]), opt, case["epochs"])
    lrs = _run(schedule, case["epochs"], case["metrics"])
    # torch's get_lr() chains are replayed operation for operation: equal bit for bit
    assert lrs == case["lrs"]
    assert len(set(case["lrs"])) >= 3  # the golden run actually moved the rate


@pytest.mark.parametrize("kind", sorted(GOLDEN["defaults"]))
def test_declared_defaults_are_torchs(kind: str) -> None:
    # required fields and t_max (the run's epochs by default) have no torch default
    ours = {p.name: p.default for p in SCHEDULES[kind].spec_params
            if not p.required and p.default is not None}
    assert ours == GOLDEN["defaults"][kind]


def test_golden_file_covers_every_schedule_and_option() -> None:
    seen: dict[str, set[str]] = {}
    for case in GOLDEN["cases"]:
        seen.setdefault(case["spec"]["type"], set()).update(case["spec"])
    assert set(seen) == set(SCHEDULES) - {"constant"}
    for kind, fields in seen.items():
        missing = {p.name for p in SCHEDULES[kind].spec_params} - fields - {"eps"}
        assert not missing, (kind, missing)
        assert "warmup_epochs" in fields, kind


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[str(c["spec"]) for c in GOLDEN["cases"]])
def test_state_round_trip_continues_exactly(case: dict[str, Any]) -> None:
    epochs, metrics, cut = case["epochs"], case["metrics"], 11
    opt = FakeOptimizer(case["base_lr"])
    schedule = make_schedule(_spec(**case["spec"]), opt, epochs)
    first = _run(schedule, cut, metrics)
    state = schedule.state_dict()
    assert all(isinstance(v, int | float | str) for v in state.values())

    fresh_opt = FakeOptimizer(case["base_lr"])
    resumed = make_schedule(_spec(**case["spec"]), fresh_opt, epochs)
    resumed.load_state_dict(state)
    rest = _run(resumed, epochs - cut, None if metrics is None else metrics[cut:])
    assert first + rest == case["lrs"]


def test_none_fields_of_a_spec_keep_torchs_defaults() -> None:
    opt = FakeOptimizer(1.0)
    fields = dict.fromkeys(p.name for p in ReduceLROnPlateau.spec_params)
    schedule = make_schedule(_spec(type="reduce_on_plateau", warmup_epochs=None, **fields), opt,
                             epochs=20)
    assert isinstance(schedule, ReduceLROnPlateau)
    assert (schedule.mode, schedule.factor, schedule.patience, schedule.threshold) == (
        "min", 0.1, 10, 1e-4)
    # patience 10: the 11th epoch without improvement reduces the rate
    assert _run(schedule, 13, [1.0] * 13) == [1.0] * 12 + [0.1]
    cosine = make_schedule(_spec(type="cosine", t_max=None, eta_min=None), FakeOptimizer(1.0), 6)
    assert isinstance(cosine, CosineAnnealingLR) and (cosine.t_max, cosine.eta_min) == (6, 0.0)


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_the_spec_reads_each_schedules_declaration(kind: str) -> None:
    cls = SCHEDULES[kind]
    names = [p.name for p in schedule_params(kind)]
    assert names[-1] == "warmup_epochs"
    assert ("monitor" in names) == cls.reads_metric
    required = {p.name: 3 for p in cls.spec_params if p.required}
    spec = Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 2}]},
                           "training": {"epochs": 9, "lr_schedule": {"type": kind, **required}}})
    schedule = spec.training.lr_schedule
    assert schedule is not None and list(schedule.to_dict()) == ["type", *names]
    built = make_schedule(schedule, FakeOptimizer(0.1), epochs=9)
    assert type(built) is cls
    for p in cls.spec_params:
        expected = required.get(p.name, p.default)
        assert getattr(built, p.name) == (9 if p.name == "t_max" else expected), p.name


def test_make_schedule_from_a_parsed_spec() -> None:
    spec = Spec.from_dict({
        "dataset": "builtin:xor", "model": {"layers": [{"type": "dense", "units": 2}]},
        "training": {"epochs": 12, "validation_split": 0.0,
                     "lr_schedule": {"type": "reduce_on_plateau", "monitor": "accuracy",
                                     "patience": 0, "factor": 0.5, "warmup_epochs": 2}}})
    opt = FakeOptimizer(0.8)
    schedule = make_schedule(spec.training.lr_schedule, opt, spec.training.epochs)
    assert isinstance(schedule, WarmupSchedule) and isinstance(schedule.main, ReduceLROnPlateau)
    assert schedule.main.mode == "max"  # the spec picks max for an accuracy monitor
    accuracy = [0.1, 0.2, 0.5, 0.6, 0.6, 0.7]
    assert _run(schedule, 6, accuracy) == [0.8 / 3, 1.6 / 3, 0.8, 0.8, 0.8, 0.4]


def test_bad_schedules_are_refused() -> None:
    opt = FakeOptimizer(0.1)
    with pytest.raises(SpecError, match=r"training\.lr_schedule\.type: unknown lr_schedule"):
        make_schedule(_spec(type="cyclic"), opt, 10)
    with pytest.raises(SpecError, match=r"lr_schedule\.step_size: must be a positive"):
        StepLR(opt, step_size=0)
    with pytest.raises(SpecError, match=r"lr_schedule\.factor: must be a number in \(0, 1\), "
                       r"got 1\.5"):
        ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(SpecError, match=r"lr_schedule\.gamma: is required"):
        ExponentialLR(opt)
