"""core.compare: flattened spec differences and per-metric best/last, by hand."""

from __future__ import annotations

from core.compare import flatten, metric_summary, spec_differences


def test_flatten_names_paths_like_spec_errors() -> None:
    spec = {"model": {"layers": [{"type": "dense", "units": 8}, {"type": "dropout"}]},
            "training": {"lr_schedule": None, "early_stopping": {}}, "tags": []}
    assert flatten(spec) == {
        "model.layers[0].type": "dense", "model.layers[0].units": 8,
        "model.layers[1].type": "dropout", "training.lr_schedule": None,
        "training.early_stopping": {}, "tags": [],
    }


def test_only_differing_paths_are_listed_with_every_runs_value() -> None:
    a = {"optimizer": {"type": "adam", "learning_rate": 0.001, "beta1": 0.9},
         "training": {"epochs": 5, "shuffle": True}}
    b = {"optimizer": {"type": "sgd", "learning_rate": 0.001, "momentum": 0.9},
         "training": {"epochs": 5.0, "shuffle": 1}}
    diffs = spec_differences({"a": a, "b": b})
    assert diffs == [
        {"path": "optimizer.type", "values": {"a": "adam", "b": "sgd"}},
        {"path": "optimizer.beta1", "values": {"a": 0.9, "b": None}},
        {"path": "training.shuffle", "values": {"a": True, "b": 1}},
        {"path": "optimizer.momentum", "values": {"a": None, "b": 0.9}},
    ]


def test_identical_specs_have_no_differences() -> None:
    spec = {"model": {"layers": [{"units": 3}]}}
    assert spec_differences({"a": spec, "b": dict(spec), "c": spec}) == []


def test_best_follows_the_metric_direction_and_last_is_the_newest_epoch() -> None:
    history = [
        {"epoch": 1, "loss": 0.9, "val_accuracy": 0.5, "lr": 0.1, "seconds": 0.2},
        {"epoch": 2, "loss": 0.4, "val_accuracy": 0.8, "lr": 0.05, "seconds": 0.1},
        {"epoch": 3, "loss": 0.5, "val_accuracy": None, "lr": 0.01, "seconds": 0.3},
        {"epoch": 4, "loss": 0.6, "val_accuracy": 0.7, "lr": 0.01, "seconds": 0.2},
    ]
    summary = metric_summary(history)
    assert summary["loss"] == {"best": 0.4, "best_epoch": 2, "last": 0.6, "last_epoch": 4}
    assert summary["val_accuracy"] == {"best": 0.8, "best_epoch": 2, "last": 0.7,
                                       "last_epoch": 4}
    assert summary["lr"] == {"best": None, "best_epoch": None, "last": 0.01, "last_epoch": 4}
    assert summary["seconds"]["best"] is None


def test_a_tie_keeps_the_first_epoch_that_reached_it() -> None:
    summary = metric_summary([{"epoch": 1, "val_loss": 0.3}, {"epoch": 2, "val_loss": 0.3}])
    assert summary["val_loss"]["best_epoch"] == 1
