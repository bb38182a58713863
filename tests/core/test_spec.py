"""The job spec: defaults, round-trips, aliases, one source of names, shape inference."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import SpecError
from core.spec import (
    ACTIVATION_PARAMS,
    INIT_PARAMS,
    LAYER_TYPES,
    LOSS_TYPES,
    ActivationFn,
    Conv2DSpec,
    DenseSpec,
    InitFn,
    LrScheduleSpec,
    ModelSpec,
    Spec,
    infer_shapes,
)

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "digits-mlp",
    "dataset": "builtin:digits",
    "init_checkpoint": None,
    "model": {"layers": [
        {"type": "dense", "units": 128, "activation": "relu", "weight_init": "he_normal",
         "bias_init": "zeros"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 10},
    ]},
    "loss": {"type": "cross_entropy", "label_smoothing": 0.0},
    "optimizer": {"type": "adam", "learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999,
                  "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "regularization": {"l1": 0.0, "l2": 0.0},
    "training": {
        "epochs": 20, "batch_size": 32, "shuffle": True, "seed": 0, "dtype": "float32",
        "validation_split": 0.1, "standardize": True,
        "early_stopping": None, "lr_schedule": None, "clip_grad_norm": None,
        "max_runtime_s": None, "diagnostics": True,
    },
    "checkpoints": {"every_epochs": 1, "keep_last": 3, "keep_best": 1, "monitor": "val_loss"},
}

EVERYTHING: dict[str, Any] = {
    "name": "all", "dataset": "ds_123", "init_checkpoint": "ck_9",
    "model": {"layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": [3, 2], "stride": 1, "padding": "same",
         "activation": {"type": "leaky_relu", "alpha": 0.2},
         "weight_init": {"type": "normal", "mean": 0, "std": 0.01}, "bias_init": "ones"},
        {"type": "batch_norm", "momentum": 0.2, "eps": 1e-3, "activation": "elu"},
        {"type": "max_pool2d", "pool_size": 2, "stride": 1},
        {"type": "avg_pool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 2, "kernel_size": 1, "padding": 1},
        {"type": "flatten"},
        {"type": "dropout", "rate": 0.1},
        {"type": "dense", "units": 5, "weight_init": {"type": "uniform", "a": -0.1, "b": 0.1}},
        {"type": "activation", "activation": "gelu"},
        {"type": "dense", "units": 3, "weight_init": {"type": "constant", "value": 0.5}},
    ]},
    "loss": {"type": "cross_entropy", "label_smoothing": 0.1, "class_weights": [1, 2, 3]},
    "optimizer": {"type": "rmsprop", "centered": True, "momentum": 0.5},
    "regularization": {"l1": 1e-5, "l2": 1e-4},
    "training": {
        "epochs": 7, "batch_size": "full", "shuffle": False, "seed": 42, "dtype": "float64",
        "validation_split": 0.25, "standardize": False,
        "early_stopping": {"monitor": "val_accuracy", "patience": 2, "min_delta": 0.01},
        "lr_schedule": {"type": "reduce_on_plateau", "patience": 1, "warmup_epochs": 2},
        "clip_grad_norm": 1.5, "max_runtime_s": 60,
    },
    "checkpoints": {"every_epochs": 2, "keep_last": 1, "keep_best": 0,
                    "monitor": "val_accuracy"},
}


def minimal(**extra: Any) -> dict[str, Any]:
    return {"model": {"layers": [{"type": "dense", "units": 2}]}, **extra}


def test_design_example_parses_and_round_trips_exactly() -> None:
    spec = Spec.from_dict(SPEC_EXAMPLE)
    out = spec.to_dict()
    assert Spec.from_dict(out) == spec
    assert json.loads(json.dumps(out)) == out
    # Every key of the example is there with its value (plus the filled defaults).
    for section in ("optimizer", "regularization", "training", "checkpoints"):
        assert out[section] == SPEC_EXAMPLE[section]
    assert out["model"]["layers"][0] == SPEC_EXAMPLE["model"]["layers"][0]
    assert out["model"]["layers"][2] == {"type": "dense", "units": 10, "activation": "linear",
                                         "weight_init": "torch_default",
                                         "bias_init": "torch_default"}
    assert out["loss"] == {"type": "cross_entropy", "label_smoothing": 0.0,
                           "class_weights": None}


def test_minimal_spec_gets_design_defaults() -> None:
    spec = Spec.from_dict(minimal())
    assert spec.to_dict()["training"] == SPEC_EXAMPLE["training"]
    assert spec.to_dict()["optimizer"] == SPEC_EXAMPLE["optimizer"]
    assert spec.to_dict()["checkpoints"] == SPEC_EXAMPLE["checkpoints"]
    assert spec.name is None and spec.dataset is None and spec.init_checkpoint is None
    assert spec.task == "classification"


def test_every_field_round_trips() -> None:
    spec = Spec.from_dict(EVERYTHING)
    again = Spec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    conv = spec.model.layers[0]
    assert isinstance(conv, Conv2DSpec)
    assert conv.kernel_size == (3, 2) and conv.kernel_hw == (3, 2)
    assert conv.activation == ActivationFn("leaky_relu", 0.2)
    assert conv.weight_init == InitFn("normal", mean=0.0, std=0.01)
    assert spec.model.layers[2].stride == 1  # type: ignore[union-attr]
    assert spec.model.layers[3].stride == 2  # type: ignore[union-attr]
    assert spec.loss.class_weights == (1.0, 2.0, 3.0)
    schedule = spec.training.lr_schedule
    assert schedule == LrScheduleSpec(
        "reduce_on_plateau", warmup_epochs=2, monitor="val_loss", mode="min", factor=0.1,
        patience=1, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8)
    assert spec.optimizer.to_dict() == {"type": "rmsprop", "learning_rate": 0.01, "alpha": 0.99,
                                        "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.5,
                                        "centered": True}


@pytest.mark.parametrize(("kind", "expected"), [
    ("sgd", {"learning_rate": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
             "weight_decay": 0.0}),
    ("adamw", {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
               "weight_decay": 0.01, "amsgrad": False}),
    ("adagrad", {"learning_rate": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                 "initial_accumulator_value": 0.0, "eps": 1e-10}),
    ("nadam", {"learning_rate": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
               "weight_decay": 0.0, "momentum_decay": 4e-3, "decoupled_weight_decay": False}),
])
def test_optimizer_defaults_are_torchs(kind: str, expected: dict[str, Any]) -> None:
    spec = Spec.from_dict(minimal(optimizer={"type": kind}))
    assert spec.optimizer.to_dict() == {"type": kind, **expected}


@pytest.mark.parametrize(("alias", "batch_size", "optimizer"), [
    ("gd", "full", {"momentum": 0.0, "nesterov": False}),
    ("bgd", "full", {"momentum": 0.0}),
    ("batch_gd", "full", {}),
    ("batch_gradient_descent", "full", {}),
    ("stochastic_gd", 1, {"momentum": 0.0}),
    ("stochastic_gradient_descent", 1, {}),
    ("minibatch_gd", 32, {"momentum": 0.0}),
    ("mini_batch_gd", 32, {}),
    ("momentum", 32, {"momentum": 0.9, "nesterov": False}),
    ("momentum_gd", 32, {"momentum": 0.9}),
    ("nesterov", 32, {"momentum": 0.9, "nesterov": True, "dampening": 0.0}),
])
def test_classic_optimizer_aliases_resolve_to_sgd(alias: str, batch_size: Any,
                                                  optimizer: dict[str, Any]) -> None:
    spec = Spec.from_dict(minimal(optimizer={"type": alias, "learning_rate": 0.1}))
    assert spec.optimizer.type == "sgd"
    assert spec.optimizer.learning_rate == 0.1
    assert spec.training.batch_size == batch_size
    for key, value in optimizer.items():
        assert getattr(spec.optimizer, key) == value
    assert Spec.from_dict(spec.to_dict()) == spec


def test_alias_accepts_a_matching_or_own_batch_size_and_own_momentum() -> None:
    gd = Spec.from_dict(minimal(optimizer={"type": "gd"}, training={"batch_size": "full"}))
    assert gd.training.batch_size == "full"
    mini = Spec.from_dict(minimal(optimizer={"type": "minibatch_gd"},
                                  training={"batch_size": 64}))
    assert mini.training.batch_size == 64
    momentum = Spec.from_dict(minimal(optimizer={"type": "momentum", "momentum": 0.5}))
    assert momentum.optimizer.momentum == 0.5


def test_activation_and_initializer_objects_fill_their_defaults() -> None:
    spec = Spec.from_dict({"model": {"layers": [
        {"type": "dense", "units": 4, "activation": "leaky_relu", "weight_init": "normal"},
        {"type": "dense", "units": 2, "activation": {"type": "elu"}},
    ]}})
    first, second = spec.model.layers
    assert isinstance(first, DenseSpec) and isinstance(second, DenseSpec)
    assert first.activation == ActivationFn("leaky_relu", 0.01)
    assert first.weight_init == InitFn("normal", mean=0.0, std=1.0)
    assert first.bias_init == InitFn("zeros")  # non-torch weight rule: zero biases, as Keras
    assert second.activation.to_json() == {"type": "elu", "alpha": 1.0}
    assert second.bias_init == InitFn("torch_default")


def test_python_callers_may_pass_names_to_layer_dataclasses() -> None:
    layer = DenseSpec(8, activation="relu", weight_init="he_uniform")  # type: ignore[arg-type]
    assert layer.activation == ActivationFn("relu")
    assert layer.weight_init == InitFn("he_uniform") and layer.bias_init == InitFn("zeros")
    assert layer.type == "dense"


def test_batch_norm_defaults_to_ones_and_zeros() -> None:
    spec = Spec.from_dict({"model": {"layers": [
        {"type": "dense", "units": 4}, {"type": "batch_norm", "weight_init": "torch_default"},
        {"type": "dense", "units": 2}]}})
    assert spec.model.to_dict()["layers"][1] == {
        "type": "batch_norm", "momentum": 0.1, "eps": 1e-5, "activation": "linear",
        "weight_init": "ones", "bias_init": "zeros"}


def test_model_spec_round_trips_alone() -> None:
    model = ModelSpec.from_dict(EVERYTHING["model"])
    assert ModelSpec.from_dict(model.to_dict()) == model
    assert model == Spec.from_dict(EVERYTHING).model
    with pytest.raises(SpecError) as info:
        ModelSpec.from_dict({"layers": [{"type": "dense", "units": 0}]})
    assert str(info.value) == "model.layers[0].units: must be a positive integer, got 0"


def test_monitors_default_to_training_loss_without_a_validation_split() -> None:
    spec = Spec.from_dict(minimal(training={
        "validation_split": 0, "early_stopping": {},
        "lr_schedule": {"type": "reduce_on_plateau"}}))
    assert spec.checkpoints.monitor == "loss"
    assert spec.training.early_stopping is not None
    assert spec.training.early_stopping.monitor == "loss"
    assert spec.training.lr_schedule is not None
    assert spec.training.lr_schedule.monitor == "loss"


def test_cosine_accepts_torch_spelling_and_plateau_mode_follows_monitor() -> None:
    spec = Spec.from_dict(minimal(training={"lr_schedule": {"type": "cosine", "T_max": 9}}))
    assert spec.training.lr_schedule == LrScheduleSpec("cosine", t_max=9, eta_min=0.0)
    assert spec.to_dict()["training"]["lr_schedule"] == {
        "type": "cosine", "t_max": 9, "eta_min": 0.0, "warmup_epochs": 0}
    plateau = Spec.from_dict(minimal(training={"lr_schedule": {
        "type": "reduce_on_plateau", "monitor": "val_accuracy"}}))
    assert plateau.training.lr_schedule is not None
    assert plateau.training.lr_schedule.mode == "max"


def test_regression_task_and_integral_floats() -> None:
    spec = Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 1.0}]},
                           "loss": {"type": "huber"}, "training": {"epochs": 3.0}})
    assert spec.task == "regression"
    assert spec.training.epochs == 3 and isinstance(spec.training.epochs, int)
    assert spec.loss.to_dict() == {"type": "huber", "delta": 1.0}


def test_spec_names_equal_the_implementation_registries() -> None:
    from dataclasses import fields

    from core.activations import ACTIVATIONS
    from core.initializers import INITIALIZERS
    from core.layers import LAYERS
    from core.losses import LOSSES
    from core.optimizers import OPTIMIZERS
    from core.schedules import SCHEDULES

    assert set(ACTIVATION_PARAMS) == set(ACTIVATIONS)
    assert set(INIT_PARAMS) == set(INITIALIZERS)
    assert INIT_PARAMS["normal"] == {"mean": 0.0, "std": 1.0}  # read from the registry
    assert ACTIVATION_PARAMS["leaky_relu"] == {"alpha": 0.01}
    # every declared parameter has a field of the parsed value to live in
    assert {k for v in INIT_PARAMS.values() for k in v} == {
        f.name for f in fields(InitFn)} - {"type"}
    assert {k for v in ACTIVATION_PARAMS.values() for k in v} == {
        f.name for f in fields(ActivationFn)} - {"type"}
    assert set(LAYER_TYPES) == set(LAYERS)
    assert set(LOSS_TYPES) == set(LOSSES)
    # optimizers and schedules have no copy here: the spec reads the classes' declarations
    for kind in OPTIMIZERS:
        assert Spec.from_dict(minimal(optimizer={"type": kind})).optimizer.type == kind
    with pytest.raises(SpecError, match="unknown lr_schedule 'linear'"):
        Spec.from_dict(minimal(training={"lr_schedule": {"type": "linear"}}))
    assert "linear" not in SCHEDULES  # warmup's ramp is not a schedule of its own


CNN = {"layers": [
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same"},
    {"type": "max_pool2d"},
    {"type": "conv2d", "filters": 16, "kernel_size": [3, 2], "stride": 2, "padding": 1},
    {"type": "batch_norm"},
    {"type": "flatten"},
    {"type": "dense", "units": 10},
]}


def test_infer_shapes_of_a_cnn() -> None:
    shapes = infer_shapes(ModelSpec.from_dict(CNN), (1, 28, 28))
    # 28 same -> 28, pool 2 -> 14, (14 + 2 - 3) // 2 + 1 = 7, (14 + 2 - 2) // 2 + 1 = 8
    assert shapes == [(8, 28, 28), (8, 14, 14), (16, 7, 8), (16, 7, 8), (896,), (10,)]
    assert infer_shapes(ModelSpec.from_dict(CNN), (28, 28)) == shapes  # (H, W) is one channel


def test_infer_shapes_matches_the_built_network() -> None:
    from core.network import build_network

    model = ModelSpec.from_dict(CNN)
    network = build_network(model, (3, 12, 10), seed=0)
    assert infer_shapes(model, (3, 12, 10)) == network.shapes


@pytest.mark.parametrize(("layers", "input_shape", "field", "fragment"), [
    ([{"type": "dense", "units": 4}], (1, 8, 8), "model.layers[0]", "add a flatten layer"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 5}, {"type": "flatten"}],
     (1, 4, 4), "model.layers[0].kernel_size", "kernel 5x5 is larger than its (padded) input 4x4"),
    ([{"type": "max_pool2d", "pool_size": 3}], (2, 2, 2), "model.layers[0].pool_size",
     "pool 3x3 is larger than its input 2x2"),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 3}], (64,), "model.layers[0]",
     "conv2d needs (C, H, W) inputs but gets (64,)"),
    ([{"type": "dense", "units": 4}], (2, 3, 4, 5), "input_shape", "(C, H, W)"),
])
def test_infer_shapes_names_the_layer(layers: list[dict[str, Any]], input_shape: tuple[int, ...],
                                      field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        infer_shapes(ModelSpec.from_dict({"layers": layers}), input_shape)
    assert info.value.field == field
    assert fragment in info.value.message


def test_spec_is_frozen_and_hashable() -> None:
    spec = Spec.from_dict(EVERYTHING)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    assert hash(spec) == hash(Spec.from_dict(EVERYTHING))


def test_random_mutations_give_spec_errors_or_round_tripping_specs() -> None:
    """Whatever JSON arrives, the answer is a SpecError or a spec that round-trips."""
    rng = random.Random(1)
    values: list[Any] = [None, -1, 0, 1, 3.5, "x", "full", "relu", [], {}, [1, 2], True,
                         1e300, float("nan"), {"type": "normal"}, "same", 10**30]
    outcomes = {"valid": 0, "refused": 0}
    for _ in range(1500):
        spec = copy.deepcopy(rng.choice([EVERYTHING, SPEC_EXAMPLE]))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice([p for p in _paths(spec) if p])
            parent = spec
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = copy.deepcopy(rng.choice(values))
        try:
            parsed = Spec.from_dict(spec)
        except SpecError:
            outcomes["refused"] += 1
            continue
        outcomes["valid"] += 1
        out = parsed.to_dict()
        assert Spec.from_dict(json.loads(json.dumps(out, allow_nan=False))) == parsed
    assert outcomes["valid"] > 50 and outcomes["refused"] > 500, outcomes


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(
        obj, list) else []
    for key, value in items:
        found.extend(_paths(value, (*prefix, key)))
    return found


@pytest.mark.parametrize("module", ["core.spec", "core.optimizers", "core.schedules",
                                    "core.spec.params", "core.dryrun", "core.activations",
                                    "core.initializers", "core.spec.layers", "core.layers"])
def test_each_module_imports_alone_in_a_fresh_process(module: str) -> None:
    """The registries import core.spec.params, whose package imports the parser that reads the
    registries: whichever comes first, the import must not meet a half-built module."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _layer_schema(name: str) -> dict[str, Any]:
    from core.spec import LAYER_SPECS
    from core.spec.params import object_schema

    schema = object_schema(LAYER_SPECS[name].spec_params, extra={"type": {"const": name}})
    schema["required"] = ["type", *schema.get("required", [])]
    return schema


def test_layer_declarations_describe_what_the_parser_accepts() -> None:
    """The JSON Schema built from each spec class's Params agrees with its parser."""
    jsonschema = pytest.importorskip("jsonschema")
    spec = Spec.from_dict(EVERYTHING)
    for layer in spec.model.to_dict()["layers"]:
        jsonschema.validate(layer, _layer_schema(layer["type"]))  # every default filled
    for raw in EVERYTHING["model"]["layers"]:
        jsonschema.validate(raw, _layer_schema(raw["type"]))  # as a user writes it
    refused = [
        {"type": "conv2d", "filters": 2, "kernel_size": [3, 3, 3]},
        {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "full"},
        {"type": "dropout", "rate": 1.0},
        {"type": "dense", "units": 4, "activation": {"type": "relu", "alpha": 0.1}},
        {"type": "dense", "units": 4, "weight_init": {"type": "normal", "std": 0}},
        {"type": "dense"},
        {"type": "layer_norm", "eps": 0},
        {"type": "activation"},
    ]
    for raw in refused:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(raw, _layer_schema(raw["type"]))
        with pytest.raises(SpecError):
            ModelSpec.from_dict({"layers": [raw]})


def test_activation_and_initializer_fields_come_from_their_registries() -> None:
    from core.activations import ACTIVATIONS
    from core.initializers import INITIALIZERS
    from core.spec.functions import ACTIVATION_SCHEMA, INITIALIZER_SCHEMA

    jsonschema = pytest.importorskip("jsonschema")
    assert ACTIVATIONS["leaky_relu"].spec_params[0].default == ACTIVATION_PARAMS[
        "leaky_relu"]["alpha"] == ActivationFn("leaky_relu").alpha == 0.01
    assert make_alpha({"type": "leaky_relu"}) == 0.01
    assert make_alpha({"type": "elu", "alpha": 2.0}) == 2.0
    normal = INITIALIZERS["normal"]
    assert [(p.name, p.default) for p in normal.spec_params] == [("mean", 0.0), ("std", 1.0)]
    draw = normal((2000,), 1, 1, np.random.default_rng(0), np.float64)  # defaults filled
    assert abs(draw.mean()) < 0.1 and abs(draw.std() - 1.0) < 0.1
    for ok in ("relu", {"type": "leaky_relu", "alpha": 0.2}, {"type": "gelu"}):
        jsonschema.validate(ok, ACTIVATION_SCHEMA)
    for bad in ("relu6", {"type": "relu", "alpha": 0.2}, {"alpha": 0.2}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, ACTIVATION_SCHEMA)
    for ok in ("he_normal", {"type": "uniform", "a": -1, "b": 1}, {"type": "constant"}):
        jsonschema.validate(ok, INITIALIZER_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "normal", "std": -1}, INITIALIZER_SCHEMA)


def make_alpha(spec: dict[str, Any]) -> float:
    from core.activations import make_activation

    return float(make_activation(spec).alpha)  # type: ignore[attr-defined]


def test_every_registry_entry_documents_itself_and_its_fields() -> None:
    """docs/spec.md and /openapi.json read these: a blank one would be a hole in both."""
    from core.activations import ACTIVATIONS
    from core.initializers import INITIALIZERS
    from core.spec import LAYER_SPECS

    entries: list[Any] = [*LAYER_SPECS.values(), *ACTIVATIONS.values(), *INITIALIZERS.values()]
    for entry in entries:
        summary = (entry.__doc__ or "").strip().split("\n")[0]
        assert summary, entry
        for param in entry.spec_params:
            assert param.doc, (entry, param.name)
            if param.required:
                assert param.example is not None, (entry, param.name)
    assert LAYER_SPECS["layer_norm"].__doc__.startswith("``layer_norm``: torch.nn.LayerNorm")
