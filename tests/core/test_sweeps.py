"""core.sweeps: the search space, every 422 it gives, the corner check, grid and random search."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from core.dryrun import dry_run
from core.errors import SpecError
from core.spec import Spec
from core.sweeps import SearchSpace, SweepSpec, check_corners, grid_points, random_point
from core.sweeps.distributions import Choice, IntUniform, LogUniform, Uniform

BASE: dict[str, Any] = {
    "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 27, "validation_split": 0.2},
}
ISSUE_SPACE: dict[str, Any] = {
    "optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
    "model.layers[0].units": {"choice": [32, 64, 128]},
    "training.batch_size": {"int_uniform": [16, 128]},
    "optimizer.momentum": {"uniform": [0.0, 0.99], "when": {"optimizer.type": "sgd"}},
    "optimizer.type": {"choice": ["sgd", "adam"]},
}


def body(**changes: Any) -> dict[str, Any]:
    out = {"name": "digits-lr-units", "base": copy.deepcopy(BASE),
           "space": copy.deepcopy(ISSUE_SPACE),
           "search": {"method": "random", "seed": 7, "max_trials": 27, "max_concurrent": 4},
           "scheduler": {"type": "asha", "metric": "val_accuracy", "mode": "max",
                         "grace_epochs": 1, "reduction_factor": 3},
           "max_retries": 1, "time_budget_s": None}
    out.update(changes)
    return out


def parse(data: dict[str, Any]) -> SweepSpec:
    return SweepSpec.from_dict(data, max_trials=100, max_concurrent=8)


def space(raw: dict[str, Any]) -> SearchSpace:
    return SearchSpace.from_dict(raw, Spec.from_dict(BASE).to_dict())


def errors_of(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        space(raw)
    return [(e.field, e.message) for e in getattr(info.value, "errors", [info.value])]


def test_the_issue_body_parses_in_sorted_path_order_and_round_trips() -> None:
    sweep = parse(body())
    assert [p.path for p in sweep.space.parameters] == [
        "model.layers[0].units", "optimizer.learning_rate", "optimizer.momentum",
        "optimizer.type", "training.batch_size"]
    momentum = sweep.space.parameters[2]
    assert momentum.distribution == Uniform(0.0, 0.99)
    assert momentum.when == (("optimizer.type", "sgd"),)
    assert sweep.scheduler is not None and sweep.scheduler.reduction_factor == 3
    assert sweep.epochs == 27 and sweep.max_retries == 1
    assert parse(sweep.to_dict()).to_dict() == sweep.to_dict()


@pytest.mark.parametrize(("raw", "field", "words"), [
    ({"optimizer.nonsense": {"uniform": [0, 1]}}, 'space["optimizer.nonsense"]',
     "no such field"),
    ({"model.layers[5].units": {"choice": [8]}}, 'space["model.layers[5].units"]',
     "no such field"),
    ({"training.nope": {"choice": [1]}}, 'space["training.nope"]', "no such field"),
    ({"model..units": {"choice": [1]}}, 'space["model..units"]', "is not a path"),
    ({"training.shuffle": {"uniform": [0, 1]}}, 'space["training.shuffle"]',
     "uniform cannot give values of a true/false field"),
    ({"model.layers[0].units": {"uniform": [8, 64]}}, 'space["model.layers[0].units"]',
     "uniform cannot give values of a integer field"),
    ({"training.dtype": {"int_uniform": [1, 2]}}, 'space["training.dtype"]',
     "int_uniform cannot give values of a named-choice field"),
    ({"training.validation_split": {"uniform": [0.1, 1.0]}},
     'space["training.validation_split"]',
     "uniform [0.1, 1.0] reaches outside the field's values: a number in [0, 1)"),
    ({"model.layers[1].units": {"int_uniform": [0, 10]}}, 'space["model.layers[1].units"]',
     "int_uniform [0, 10] reaches outside the field's values: a positive integer"),
    ({"optimizer.type": {"choice": ["adam", "adamx"]}}, 'space["optimizer.type"]',
     "choice 'adamx' is not one of"),
    ({"optimizer.learning_rate": {"uniform": [-0.1, 0.1]}}, 'space["optimizer.learning_rate"]',
     "uniform [-0.1, 0.1] reaches outside the field's values: a non-negative number"),
    ({"optimizer.learning_rate": {"log_uniform": [0, 0.1]}}, 'space["optimizer.learning_rate"]',
     "log_uniform must be [low, high] of positive finite numbers"),
    ({"optimizer.learning_rate": {"uniform": [0.5, 0.1]}}, 'space["optimizer.learning_rate"]',
     "uniform [0.5, 0.1] is an empty range"),
    ({"training.epochs": {"int_uniform": [10, 5]}}, 'space["training.epochs"]',
     "int_uniform [10, 5] is an empty range"),
    ({"training.epochs": {"int_uniform": [1.5, 5]}}, 'space["training.epochs"]',
     "int_uniform must be [low, high] of integers"),
    ({"training.epochs": {"choice": []}}, 'space["training.epochs"]',
     "choice must be a non-empty list"),
    ({"training.epochs": {"choice": [3, 3]}}, 'space["training.epochs"]',
     "choice lists a value twice"),
    ({"training.epochs": {"choice": list(range(1, 258))}}, 'space["training.epochs"]',
     "choice lists 257 values; at most 256"),
    ({"training.epochs": {"choice": [3], "uniform": [1, 2]}}, 'space["training.epochs"]',
     "exactly one distribution"),
    ({"training.epochs": {"normal": [3, 1]}}, 'space["training.epochs"]', "unknown key 'normal'"),
    ({"training.epochs": 5}, 'space["training.epochs"]', "must be an object"),
    ({"training.epochs": {"choice": [3, 5], "when": {"optimizer.type": "sgd"}}},
     'space["training.epochs"]', "when names 'optimizer.type', which is not a parameter"),
    ({"training.epochs": {"choice": [3, 5], "when": {"optimizer.type": "sgd"}},
      "optimizer.type": {"choice": ["adam", "rmsprop"]}},
     'space["training.epochs"]', "when 'optimizer.type' is 'sgd' can never hold"),
    ({"training.epochs": {"choice": [3], "when": {"training.seed": 1}},
      "training.seed": {"choice": [1], "when": {"training.epochs": 3}}},
     'space["training.epochs"]', "when rules form a cycle"),
])
def test_each_bad_parameter_is_a_422_naming_its_path(raw: dict[str, Any], field: str,
                                                     words: str) -> None:
    errors = errors_of(raw)
    assert errors[0][0] == field
    assert words in errors[0][1]


def test_every_bad_parameter_is_reported_at_once() -> None:
    errors = errors_of({"optimizer.nonsense": {"choice": [1]},
                        "training.shuffle": {"uniform": [0, 1]},
                        "training.seed": {"int_uniform": [3, 1]}})
    assert [f for f, _ in errors] == ['space["training.seed"]', 'space["optimizer.nonsense"]',
                                      'space["training.shuffle"]']


def test_an_empty_or_too_large_space_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse(body(space={}))
    assert info.value.field == "space"
    many = {f"model.layers[0].units{i}": {"choice": [1]} for i in range(65)}
    with pytest.raises(SpecError) as info:
        parse(body(space=many))
    assert (info.value.field, info.value.message) == ("space",
                                                      "has 65 parameters; at most 64")


def test_a_field_only_another_reachable_optimizer_declares_is_known() -> None:
    # momentum is sgd's, and the space may pick sgd: known, with sgd's declared bounds
    errors = errors_of({"optimizer.momentum": {"uniform": [-1.0, 0.5]},
                        "optimizer.type": {"choice": ["sgd", "adam"]}})
    assert errors == [('space["optimizer.momentum"]',
                       "uniform [-1.0, 0.5] reaches outside the field's values: "
                       "a non-negative number")]
    # without sgd in reach, adam declares no momentum
    assert errors_of({"optimizer.momentum": {"uniform": [0.0, 0.5]}})[0][1] == \
        "no such field in the job spec"


def test_a_field_null_by_default_takes_a_range() -> None:
    parsed = space({"training.clip_grad_norm": {"log_uniform": [0.1, 10.0]}})
    assert parsed.parameters[0].distribution == LogUniform(0.1, 10.0)


@pytest.mark.parametrize(("change", "field"), [
    ({"search": {"method": "bayes", "max_trials": 3}}, "search.method"),
    ({"search": {"method": "random"}}, "search.max_trials"),
    ({"search": {"method": "random", "max_trials": 101}}, "search.max_trials"),
    ({"search": {"method": "random", "max_trials": 3, "max_concurrent": 9}},
     "search.max_concurrent"),
    ({"search": {"method": "grid"}}, 'space["optimizer.learning_rate"]'),
    ({"scheduler": {"type": "asha", "metric": "val_accuracy", "grace_epochs": 27}},
     "scheduler.grace_epochs"),
    ({"scheduler": {"type": "hyperband", "metric": "val_accuracy"}}, "scheduler.type"),
    ({"scheduler": {"type": "asha", "metric": "val_accuracy", "reduction_factor": 1}},
     "scheduler.reduction_factor"),
    ({"max_retries": -1}, "max_retries"),
    ({"time_budget_s": 0}, "time_budget_s"),
    ({"surprise": 1}, "surprise"),
    ({"base": {**BASE, "optimizer": {"type": "adam", "learning_rate": -1}}},
     "base.optimizer.learning_rate"),
])
def test_each_bad_sweep_field_is_a_422_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(body(**change))
    assert field in [e.field for e in getattr(info.value, "errors", [info.value])]


def test_a_val_metric_needs_a_validation_split() -> None:
    base = {**BASE, "training": {"epochs": 27, "validation_split": 0.0}}
    with pytest.raises(SpecError) as info:
        parse(body(base=base))
    assert info.value.field == "scheduler.metric"


def test_scheduler_mode_defaults_from_the_metric() -> None:
    parsed = parse(body(scheduler={"type": "asha", "metric": "val_loss"}))
    assert parsed.scheduler is not None
    assert (parsed.scheduler.mode, parsed.scheduler.grace_epochs,
            parsed.scheduler.reduction_factor) == ("min", 1, 3)


def digits_dry_run(max_params: int) -> Any:
    """The service's check in miniature: the dry run on digits' shape, and a parameter cap."""
    def check(spec: Spec) -> None:
        report = dry_run(spec, (64,), 1797)
        if report["total_params"] > max_params:
            raise SpecError("model.layers", f"{report['total_params']} parameters exceed the "
                            f"limit of {max_params}")
    return check


def test_corners_pass_for_the_issue_space() -> None:
    sweep = parse(body())
    check_corners(sweep.space, sweep.base, digits_dry_run(100_000))


def test_a_corner_the_parser_refuses_names_the_path_and_the_corner() -> None:
    # an activation is an object or a name: only the parser knows which names exist
    sweep = parse(body(space={"model.layers[0].activation": {"choice": ["relu", "relux"]}}))
    with pytest.raises(SpecError) as info:
        check_corners(sweep.space, sweep.base, digits_dry_run(100_000))
    assert info.value.field == 'space["model.layers[0].activation"]'
    assert info.value.message.startswith(
        "the corner {model.layers[0].activation='relux'} fails the job spec: "
        "model.layers[0].activation")


def test_a_corner_the_dry_run_refuses_names_the_path_and_the_corner() -> None:
    sweep = parse(body(space={"model.layers[0].units": {"choice": [32, 512]}}))
    with pytest.raises(SpecError) as info:
        check_corners(sweep.space, sweep.base, digits_dry_run(10_000))
    assert info.value.field == 'space["model.layers[0].units"]'
    assert "{model.layers[0].units=512}" in info.value.message
    assert "38410 parameters exceed the limit of 10000" in info.value.message


def test_a_conditional_corner_is_checked_with_its_condition_set() -> None:
    # sgd's nesterov needs momentum > 0: the corner momentum=0 with type=sgd (its when) fails
    base = {**BASE, "optimizer": {"type": "adam", "learning_rate": 0.01}}
    sweep = parse(body(base=base, space={
        "optimizer.type": {"choice": ["adam", "nesterov"]},
        "optimizer.momentum": {"uniform": [0.0, 0.9], "when": {"optimizer.type": "nesterov"}}}))
    with pytest.raises(SpecError) as info:
        check_corners(sweep.space, sweep.base, digits_dry_run(100_000))
    assert info.value.field == 'space["optimizer.momentum"]'
    assert "{optimizer.type='nesterov', optimizer.momentum=0.0}" in info.value.message


def test_apply_sets_only_active_values_on_the_base_as_written() -> None:
    sweep = parse(body())
    spec = sweep.space.apply(sweep.base, {"optimizer.type": "sgd", "optimizer.momentum": 0.5,
                                          "model.layers[0].units": 64})
    assert spec["optimizer"] == {"type": "sgd", "learning_rate": 0.01, "momentum": 0.5}
    assert spec["model"]["layers"][0] == {"type": "dense", "units": 64, "activation": "relu"}
    assert spec["training"] == BASE["training"] and sweep.base == BASE  # base untouched


def test_grid_order_last_path_fastest_conditionals_deduplicated() -> None:
    grid = space({"model.layers[0].units": {"choice": [16, 32]},
                  "optimizer.type": {"choice": ["adam", "sgd"]},
                  "optimizer.momentum": {"choice": [0.0, 0.9], "when": {"optimizer.type": "sgd"}}})
    expected = []
    for units in (16, 32):
        expected += [
            {"model.layers[0].units": units, "optimizer.type": "adam"},
            {"model.layers[0].units": units, "optimizer.momentum": 0.0, "optimizer.type": "sgd"},
            {"model.layers[0].units": units, "optimizer.momentum": 0.9, "optimizer.type": "sgd"},
        ]
    assert grid_points(grid, 100) == expected
    assert grid_points(grid, 4) == expected[:4]


def test_random_is_a_pure_function_of_seed_and_index() -> None:
    sweep = parse(body())
    first = [random_point(sweep.space, 7, i) for i in range(40)]
    assert [random_point(sweep.space, 7, i) for i in reversed(range(40))] == first[::-1]
    assert first != [random_point(sweep.space, 8, i) for i in range(40)]
    assert len({repr(p) for p in first}) == 40
    for point in first:
        assert point["model.layers[0].units"] in (32, 64, 128)
        assert 1e-4 <= point["optimizer.learning_rate"] <= 1e-1
        assert 16 <= point["training.batch_size"] <= 128
        assert isinstance(point["training.batch_size"], int)
        assert ("optimizer.momentum" in point) == (point["optimizer.type"] == "sgd")
        Spec.from_dict(sweep.space.apply(sweep.base, point))


def test_distributions_map_a_unit_draw_with_inclusive_bounds() -> None:
    assert [Choice((1, 2, 3)).from_unit(u) for u in (0.0, 0.34, 0.67, 0.9999)] == [1, 2, 3, 3]
    assert [IntUniform(16, 18).from_unit(u) for u in (0.0, 0.34, 0.67, 0.9999)] == \
        [16, 17, 18, 18]
    assert Uniform(1.0, 3.0).from_unit(0.25) == 1.5
    assert LogUniform(1e-4, 1e-2).from_unit(0.5) == pytest.approx(1e-3, rel=1e-12)
    assert LogUniform(1e-4, 1e-2).from_unit(0.0) == 1e-4
    assert math.isclose(LogUniform(1e-4, 1e-2).from_unit(0.9999999999), 1e-2, rel_tol=1e-8)


def test_the_example_sweep_parses_and_its_corners_pass() -> None:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "digits_sweep.json"
    sweep = parse(json.loads(path.read_text()))
    check_corners(sweep.space, sweep.base, digits_dry_run(100_000))
    assert (sweep.search.max_trials, sweep.epochs, sweep.objective) == (
        27, 27, ("val_accuracy", "max"))
