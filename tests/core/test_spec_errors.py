"""A table of bad specs: each must fail with the exact field path and a clear message."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from core.errors import CheckpointError, DatasetError, DivergedError, SpecError, SpecErrors
from core.spec import Spec

MLP: list[dict[str, Any]] = [
    {"type": "dense", "units": 16, "activation": "relu"},
    {"type": "dense", "units": 3},
]
CNN: list[dict[str, Any]] = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "max_pool2d"},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]


def base() -> dict[str, Any]:
    return {"name": "t", "dataset": "builtin:xor", "model": {"layers": copy.deepcopy(MLP)}}


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target


def layers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"layers": list(items)}}


DENSE3 = {"type": "dense", "units": 3}

# (id, patch merged into a valid spec, exact field path, fragment of the message)
BAD_SPECS: list[tuple[str, dict[str, Any], str, str]] = [
    ("negative units", layers({"type": "dense", "units": -3}, DENSE3),
     "model.layers[0].units", "must be a positive integer, got -3"),
    ("boolean units", layers({"type": "dense", "units": True}, DENSE3),
     "model.layers[0].units", "must be a positive integer, got true"),
    ("float units", layers({"type": "dense", "units": 2.5}, DENSE3),
     "model.layers[0].units", "got 2.5"),
    ("missing units", layers({"type": "dense"}, DENSE3), "model.layers[0].units", "is required"),
    ("unknown layer type", layers({"type": "lstm", "units": 4}, DENSE3),
     "model.layers[0].type", "unknown layer type 'lstm'"),
    ("layer without type", layers({"units": 4}, DENSE3), "model.layers[0].type", "is required"),
    ("unknown layer key", layers({"type": "dense", "units": 4, "unit": 4}, DENSE3),
     "model.layers[0].unit", "did you mean 'units'?"),
    ("keras initializer key", layers({"type": "dense", "units": 4,
                                      "kernel_initializer": "he_normal"}, DENSE3),
     "model.layers[0].kernel_initializer", "the weight initializer is 'weight_init'"),
    ("alpha beside the activation", layers({"type": "dense", "units": 4,
                                            "activation": "leaky_relu", "alpha": 0.2}, DENSE3),
     "model.layers[0].alpha", '{"type": "leaky_relu", "alpha": 0.2}'),
    ("layer is not an object", layers("dense", DENSE3), "model.layers[0]",
     "must be a JSON object"),
    ("empty layers", {"model": {"layers": []}}, "model.layers", "non-empty list"),
    ("missing model", {"model": None}, "model", "must be a JSON object"),
    ("unknown activation", layers({"type": "dense", "units": 4, "activation": "relu6"}, DENSE3),
     "model.layers[0].activation", "unknown activation 'relu6'"),
    ("activation param of another fn",
     layers({"type": "dense", "units": 4, "activation": {"type": "relu", "alpha": 0.1}}, DENSE3),
     "model.layers[0].activation.alpha", "unknown key"),
    ("unknown initializer", layers({"type": "dense", "units": 4, "weight_init": "xavier"},
                                   DENSE3),
     "model.layers[0].weight_init", "unknown initializer 'xavier'"),
    ("normal init std 0", layers({"type": "dense", "units": 4,
                                  "weight_init": {"type": "normal", "std": 0}}, DENSE3),
     "model.layers[0].weight_init.std", "must be a positive number"),
    ("uniform init a >= b", layers({"type": "dense", "units": 4,
                                    "bias_init": {"type": "uniform", "a": 1, "b": 0}}, DENSE3),
     "model.layers[0].bias_init.b", "greater than a"),
    ("fan init on batch_norm", layers({"type": "dense", "units": 4},
                                      {"type": "batch_norm", "weight_init": "he_normal"}, DENSE3),
     "model.layers[1].weight_init", "needs a weight matrix"),
    ("dropout rate 1", layers({"type": "dense", "units": 4}, {"type": "dropout", "rate": 1.0},
                              DENSE3),
     "model.layers[1].rate", "must be a number in [0, 1), got 1.0"),
    ("conv kernel triple", layers({"type": "conv2d", "filters": 2, "kernel_size": [3, 3, 3]},
                                  {"type": "flatten"}, DENSE3),
     "model.layers[0].kernel_size", "[height, width] pair"),
    ("conv missing kernel", layers({"type": "conv2d", "filters": 2}, {"type": "flatten"},
                                   DENSE3),
     "model.layers[0].kernel_size", "is required"),
    ("conv bad padding", layers({"type": "conv2d", "filters": 2, "kernel_size": 3,
                                 "padding": "full"}, {"type": "flatten"}, DENSE3),
     "model.layers[0].padding", "'valid', 'same' or an integer"),
    ("same padding with stride", layers({"type": "conv2d", "filters": 2, "kernel_size": 3,
                                         "stride": 2, "padding": "same"},
                                        {"type": "flatten"}, DENSE3),
     "model.layers[0].padding", "needs stride 1"),
    ("conv after flatten", layers({"type": "flatten"}, {"type": "conv2d", "filters": 2,
                                                        "kernel_size": 3}, DENSE3),
     "model.layers[1].type", "model.layers[0] (flatten) already made them flat"),
    ("pool after dense", layers({"type": "dense", "units": 4}, {"type": "max_pool2d"}, DENSE3),
     "model.layers[1].type", "model.layers[0] (dense) already made them flat"),
    ("pool stride 0", layers({"type": "conv2d", "filters": 2, "kernel_size": 3},
                             {"type": "avg_pool2d", "stride": 0}, {"type": "flatten"}, DENSE3),
     "model.layers[1].stride", "must be a positive integer, got 0"),
    ("activation layer without fn", layers({"type": "dense", "units": 4},
                                           {"type": "activation"}, DENSE3),
     "model.layers[1].activation", "is required"),
    ("softmax before cross_entropy",
     layers({"type": "dense", "units": 4}, {"type": "dense", "units": 3,
                                            "activation": "softmax"}),
     "model.layers[1].activation", "cross_entropy takes logits and applies softmax itself; "
     "remove this softmax (predict returns probabilities)"),
    ("standalone softmax layer", layers(DENSE3, {"type": "activation", "activation": "softmax"}),
     "model.layers[1].activation", "model.layers[-1] is index 1"),
    ("sigmoid before BCE", {**layers({"type": "dense", "units": 1, "activation": "sigmoid"}),
                            "loss": {"type": "binary_cross_entropy"}},
     "model.layers[0].activation", "applies sigmoid itself"),
    ("one unit for cross_entropy", layers({"type": "dense", "units": 1}),
     "model.layers[0].units", "use binary_cross_entropy"),
    ("unknown loss", {"loss": {"type": "nll"}}, "loss.type", "unknown loss 'nll'"),
    ("label smoothing on mse", {"loss": {"type": "mse", "label_smoothing": 0.1}},
     "loss.label_smoothing", "only used by the cross_entropy loss, not mse"),
    ("label smoothing 1", {"loss": {"label_smoothing": 1.0}}, "loss.label_smoothing",
     "[0, 1)"),
    ("class weights length", {"loss": {"class_weights": [1.0, 2.0]}}, "loss.class_weights",
     "has 2 weights but the output layer model.layers[1] has 3 units"),
    ("negative class weight", {"loss": {"class_weights": [1.0, -1.0, 1.0]}},
     "loss.class_weights", "positive numbers"),
    ("huber delta 0", {"loss": {"type": "huber", "delta": 0}}, "loss.delta",
     "must be a positive number"),
    ("unknown optimizer", {"optimizer": {"type": "adamx"}}, "optimizer.type",
     "unknown optimizer 'adamx'; expected one of ["),
    ("list as optimizer type", {"optimizer": {"type": ["adam"]}}, "optimizer.type",
     "unknown optimizer [\"adam\"]"),
    ("object as layer type", layers({"type": {}}, DENSE3), "model.layers[0].type",
     "unknown layer type {}"),
    ("torch lr key", {"optimizer": {"type": "adam", "lr": 0.1}}, "optimizer.lr",
     "the learning rate is 'learning_rate'"),
    ("beta1 of 1", {"optimizer": {"type": "adam", "beta1": 1.0}}, "optimizer.beta1",
     "must be a number in [0, 1), got 1.0"),
    ("negative learning rate", {"optimizer": {"type": "sgd", "learning_rate": -0.1}},
     "optimizer.learning_rate", "must be a non-negative number, got -0.1"),
    ("string learning rate", {"optimizer": {"type": "sgd", "learning_rate": "0.1"}},
     "optimizer.learning_rate", "got '0.1'"),
    ("adam param on sgd", {"optimizer": {"type": "sgd", "beta1": 0.9}}, "optimizer.beta1",
     "not a hyperparameter of sgd"),
    ("nesterov without momentum", {"optimizer": {"type": "sgd", "nesterov": True}},
     "optimizer.nesterov", "requires momentum > 0 and dampening 0"),
    ("nesterov with dampening", {"optimizer": {"type": "sgd", "nesterov": True, "momentum": 0.9,
                                               "dampening": 0.1}},
     "optimizer.nesterov", "dampening 0.1"),
    ("nadam momentum_decay", {"optimizer": {"type": "nadam", "momentum_decay": -0.1}},
     "optimizer.momentum_decay", "must be a non-negative number, got -0.1"),
    ("nadam beta2", {"optimizer": {"type": "nadam", "beta2": 1.5}}, "optimizer.beta2",
     "must be a number in [0, 1), got 1.5"),
    ("amsgrad on nadam", {"optimizer": {"type": "nadam", "amsgrad": True}}, "optimizer.amsgrad",
     "not a hyperparameter of nadam (it belongs to adam)"),
    ("nadam's field on adam", {"optimizer": {"type": "adam", "momentum_decay": 0.1}},
     "optimizer.momentum_decay", "not a hyperparameter of adam (it belongs to nadam)"),
    ("nesterov alias turned off", {"optimizer": {"type": "nesterov", "nesterov": False}},
     "optimizer.nesterov", "means nesterov: true"),
    ("amsgrad not bool", {"optimizer": {"type": "adam", "amsgrad": 1}}, "optimizer.amsgrad",
     "must be true or false, got 1"),
    ("momentum alias with 0", {"optimizer": {"type": "momentum", "momentum": 0.0}},
     "optimizer.momentum", "needs momentum > 0"),
    ("gd alias vs batch size", {"optimizer": {"type": "gd"}, "training": {"batch_size": 32}},
     "training.batch_size", "conflicts with optimizer.type 'gd'"),
    ("sgd-1 alias vs batch size", {"optimizer": {"type": "stochastic_gd"},
                                   "training": {"batch_size": "full"}},
     "training.batch_size", "uses batch_size 1"),
    ("minibatch alias vs full", {"optimizer": {"type": "minibatch_gd"},
                                 "training": {"batch_size": "full"}},
     "training.batch_size", "needs an integer batch size"),
    ("training typo", {"training": {"epoch": 3}}, "training.epoch",
     "unknown key; did you mean 'epochs'?"),
    ("zero epochs", {"training": {"epochs": 0}}, "training.epochs",
     "must be a positive integer, got 0"),
    ("batch size string", {"training": {"batch_size": "all"}}, "training.batch_size",
     'must be a positive integer or "full"'),
    ("dtype float16", {"training": {"dtype": "float16"}}, "training.dtype",
     "must be one of ['float32', 'float64'], got 'float16'"),
    ("validation split 1", {"training": {"validation_split": 1}}, "training.validation_split",
     "[0, 1)"),
    ("shuffle string", {"training": {"shuffle": "yes"}}, "training.shuffle",
     "must be true or false"),
    ("negative seed", {"training": {"seed": -1}}, "training.seed", "got -1"),
    ("clip norm 0", {"training": {"clip_grad_norm": 0}}, "training.clip_grad_norm",
     "must be a positive number"),
    ("nan runtime", {"training": {"max_runtime_s": float("nan")}}, "training.max_runtime_s",
     "must be a positive number"),
    ("early stopping mode", {"training": {"early_stopping": {"mode": "up"}}},
     "training.early_stopping.mode", "must be one of ['auto', 'min', 'max']"),
    ("early stopping patience", {"training": {"early_stopping": {"patience": -2}}},
     "training.early_stopping.patience", "non-negative integer"),
    ("val monitor without split", {"training": {"validation_split": 0.0,
                                                "early_stopping": {"monitor": "val_loss"}}},
     "training.early_stopping.monitor", "needs training.validation_split > 0"),
    ("accuracy monitor on regression", {
        **layers({"type": "dense", "units": 1}), "loss": {"type": "mse"},
        "checkpoints": {"monitor": "val_accuracy"}},
     "checkpoints.monitor", "only for classification losses, not mse"),
    ("unknown schedule", {"training": {"lr_schedule": {"type": "cyclic"}}},
     "training.lr_schedule.type", "unknown lr_schedule 'cyclic'"),
    ("step without step_size", {"training": {"lr_schedule": {"type": "step"}}},
     "training.lr_schedule.step_size", "is required"),
    ("plateau factor 1", {"training": {"lr_schedule": {"type": "reduce_on_plateau",
                                                       "factor": 1.0}}},
     "training.lr_schedule.factor", "(0, 1)"),
    ("cosine param on step", {"training": {"lr_schedule": {"type": "step", "step_size": 2,
                                                           "eta_min": 0.1}}},
     "training.lr_schedule.eta_min", "unknown key"),
    ("exponential without gamma", {"training": {"lr_schedule": {"type": "exponential"}}},
     "training.lr_schedule.gamma", "is required"),
    ("cosine t_max 0", {"training": {"lr_schedule": {"type": "cosine", "t_max": 0}}},
     "training.lr_schedule.t_max", "must be a positive integer, got 0"),
    ("plateau monitor", {"training": {"lr_schedule": {"type": "reduce_on_plateau",
                                                      "monitor": "f1"}}},
     "training.lr_schedule.monitor", "must be one of ['loss', 'val_loss'"),
    ("monitor on a step schedule", {"training": {"lr_schedule": {
        "type": "step", "step_size": 2, "monitor": "loss"}}},
     "training.lr_schedule.monitor", "unknown key"),
    ("warmup too long", {"training": {"epochs": 5, "lr_schedule": {"type": "cosine",
                                                                   "warmup_epochs": 5}}},
     "training.lr_schedule.warmup_epochs", "must be less than training.epochs (5)"),
    ("checkpoint keep_last 0", {"checkpoints": {"keep_last": 0}}, "checkpoints.keep_last",
     "must be a positive integer"),
    ("checkpoint unknown monitor", {"checkpoints": {"monitor": "f1"}}, "checkpoints.monitor",
     "must be one of"),
    ("negative l2", {"regularization": {"l2": -0.1}}, "regularization.l2",
     "must be a non-negative number"),
    ("regularization typo", {"regularization": {"l3": 0.1}}, "regularization.l3",
     "unknown key"),
    ("unknown top-level key", {"optimiser": {"type": "sgd"}}, "optimiser",
     "did you mean 'optimizer'?"),
    ("unknown builtin dataset", {"dataset": "builtin:mnist"}, "dataset",
     "unknown builtin dataset 'builtin:mnist'"),
    ("name not a string", {"name": 5}, "name", "non-empty string"),
]


@pytest.mark.parametrize(("patch", "field", "fragment"),
                         [case[1:] for case in BAD_SPECS], ids=[case[0] for case in BAD_SPECS])
def test_bad_spec_names_the_field(patch: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_dict(merge(base(), copy.deepcopy(patch)))
    errors = info.value.errors if isinstance(info.value, SpecErrors) else [info.value]
    assert [e.field for e in errors] == [field], [str(e) for e in errors]
    assert fragment in errors[0].message
    assert str(errors[0]) == f"{field}: {errors[0].message}"


def test_the_table_is_big_enough() -> None:
    assert len(BAD_SPECS) >= 30
    assert len({case[0] for case in BAD_SPECS}) == len(BAD_SPECS)


def test_all_errors_are_collected_in_spec_order() -> None:
    spec = base()
    spec["model"]["layers"][0]["units"] = -3
    spec["optimizer"] = {"type": "adamx"}
    spec["training"] = {"epoch": 3, "batch_size": 0}
    with pytest.raises(SpecErrors) as info:
        Spec.from_dict(spec)
    assert [e.field for e in info.value.errors] == [
        "model.layers[0].units", "optimizer.type", "training.epoch", "training.batch_size"]
    assert str(info.value).startswith("4 errors: model.layers[0].units: must be a positive "
                                      "integer, got -3; optimizer.type: unknown optimizer")


def test_spec_must_be_an_object() -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_dict([1, 2])  # type: ignore[arg-type]
    assert info.value.field == "spec"
    assert "must be a JSON object" in info.value.message


def test_single_error_is_a_plain_spec_error_with_to_dict() -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_dict(merge(base(), {"training": {"epochs": -1}}))
    assert not isinstance(info.value, SpecErrors)
    assert info.value.to_dict() == {"field": "training.epochs",
                                    "message": "must be a positive integer, got -1"}


@pytest.mark.parametrize(("patch", "field"), [
    (layers({"type": "dense", "units": -3}), "model.layers[0].units"),
    ({**layers({"type": "dense", "units": 1}), "loss": {"type": "l2"}}, "loss.type"),
    ({**layers({"type": "lstm"}, {"type": "dense", "units": 3}),
      "loss": {"class_weights": [1, 1]}}, "model.layers[0].type"),
])
def test_an_invalid_section_does_not_cascade_into_cross_field_errors(
        patch: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_dict(merge(base(), copy.deepcopy(patch)))
    errors = info.value.errors if isinstance(info.value, SpecErrors) else [info.value]
    assert [e.field for e in errors] == [field]


@pytest.mark.parametrize("error", [
    SpecError("training.epochs", "must be a positive integer, got 0"),
    SpecError.many([SpecError("a", "x"), SpecError("b.c", "y")]),
    DatasetError("row 3: NaN", "file"),
    DivergedError(4, "loss became nan at epoch 4"),
    CheckpointError("missing __spec__"),
])
def test_errors_survive_pickling_with_their_fields(error: Exception) -> None:
    """Celery pickles exceptions; custom constructors need __reduce__ to come back."""
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert repr(vars(again)) == repr(vars(error))  # nested SpecErrors compare by identity
