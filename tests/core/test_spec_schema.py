"""The generated JSON Schema of a job spec agrees with core.spec's parser.

Every example validates against it and parses; a spec the parser refuses for a rule the
schema can express (an unknown type, an out-of-range number, an unknown key) is refused by
the schema too; the defaults it shows are the ones the parser fills in.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from core.errors import SpecError
from core.spec import Spec
from core.spec.params import Param, defaults
from core.spec.reference import example
from core.spec.schema import (
    REGISTRIES,
    Registry,
    definitions,
    job_spec_schema,
    standalone_schema,
)
from core.spec.training import (
    CHECKPOINT_PARAMS,
    EARLY_STOPPING_PARAMS,
    REGULARIZATION_PARAMS,
    TRAINING_PARAMS,
    CheckpointPolicy,
    EarlyStoppingSpec,
    RegularizationSpec,
    TrainingSpec,
)

# The job specs among the examples (a sweep body, *_sweep.json, holds one as its "base").
EXAMPLES = sorted(p for p in (Path(__file__).parents[2] / "examples").glob("*.json")
                  if not p.stem.endswith("_sweep"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = standalone_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator: jsonschema.Draft202012Validator, spec: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(spec)]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates_and_parses(path: Path,
                                            validator: jsonschema.Draft202012Validator) -> None:
    spec = json.loads(path.read_text())
    assert errors_of(validator, spec) == []
    Spec.from_dict(spec)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_filled_spec_validates(path: Path,
                                   validator: jsonschema.Draft202012Validator) -> None:
    # to_dict writes every field of every section: each must be one the schema knows.
    filled = Spec.from_dict(json.loads(path.read_text())).to_dict()
    assert errors_of(validator, filled) == []


def base() -> dict[str, Any]:
    return json.loads((Path(__file__).parents[2] / "examples" / "digits_mlp.json").read_text())


# (id, patch of digits_mlp.json applied section by section); the parser refuses each too.
BAD: list[tuple[str, dict[str, Any]]] = [
    ("unknown loss type", {"loss": {"type": "nll"}}),
    ("label smoothing 1", {"loss": {"label_smoothing": 1.0}}),
    ("delta on cross_entropy", {"loss": {"type": "cross_entropy", "delta": 1.0}}),
    ("huber delta 0", {"loss": {"type": "huber", "delta": 0}}),
    ("negative class weight", {"loss": {"class_weights": [1.0, -1.0]}}),
    ("epochs 0", {"training": {"epochs": 0}}),
    ("float epochs", {"training": {"epochs": 2.5}}),
    ("batch size word", {"training": {"batch_size": "all"}}),
    ("validation split 1", {"training": {"validation_split": 1}}),
    ("dtype float16", {"training": {"dtype": "float16"}}),
    ("boolean seed", {"training": {"seed": True}}),
    ("training typo", {"training": {"epoch": 3}}),
    ("early stopping mode", {"training": {"early_stopping": {"mode": "up"}}}),
    ("negative patience", {"training": {"early_stopping": {"patience": -1}}}),
    ("clip norm 0", {"training": {"clip_grad_norm": 0}}),
    ("negative l2", {"regularization": {"l2": -0.1}}),
    ("regularization typo", {"regularization": {"l3": 0.1}}),
    ("keep_last 0", {"checkpoints": {"keep_last": 0}}),
    ("unknown monitor", {"checkpoints": {"monitor": "f1"}}),
    ("unknown top-level key", {"epochs": 3}),
    ("empty name", {"name": ""}),
    ("empty layers", {"model": {"layers": []}}),
    ("unknown layer type", {"model": {"layers": [{"type": "lstm", "units": 4}]}}),
    ("layer without type", {"model": {"layers": [{"units": 4}]}}),
    ("negative units", {"model": {"layers": [{"type": "dense", "units": -3}]}}),
    ("dropout rate 1", {"model": {"layers": [{"type": "dropout", "rate": 1.0},
                                             {"type": "dense", "units": 10}]}}),
    ("keras key on a layer", {"model": {"layers": [{"type": "dense", "units": 10,
                                                    "kernel_initializer": "he_normal"}]}}),
    ("unknown activation", {"model": {"layers": [{"type": "dense", "units": 10,
                                                  "activation": "relu6"}]}}),
    ("activation param of another function",
     {"model": {"layers": [{"type": "dense", "units": 10,
                            "activation": {"type": "relu", "alpha": 0.1}}]}}),
    ("normal init std 0", {"model": {"layers": [{"type": "dense", "units": 10,
                                                 "weight_init": {"type": "normal", "std": 0}}]}}),
    ("unknown optimizer type", {"optimizer": {"type": "adamx"}}),
    ("negative learning rate", {"optimizer": {"type": "adam", "learning_rate": -0.1}}),
    ("beta1 of 1", {"optimizer": {"type": "adam", "beta1": 1.0}}),
    ("momentum on adam", {"optimizer": {"type": "adam", "momentum": 0.9}}),
    ("lr as torch spells it", {"optimizer": {"type": "sgd", "lr": 0.1}}),
    ("unknown schedule", {"training": {"lr_schedule": {"type": "cyclic"}}}),
    ("schedule without type", {"training": {"lr_schedule": {"gamma": 0.5}}}),
    ("step without step_size", {"training": {"lr_schedule": {"type": "step"}}}),
    ("plateau factor 1", {"training": {"lr_schedule": {"type": "reduce_on_plateau",
                                                       "factor": 1.0}}}),
]


@pytest.mark.parametrize("alias", ["gd", "momentum", "nesterov", "minibatch_gd"])
def test_a_classic_optimizer_name_validates(alias: str,
                                            validator: jsonschema.Draft202012Validator) -> None:
    spec = {**base(), "optimizer": {"type": alias, "learning_rate": 0.1}}
    spec["training"] = {k: v for k, v in spec["training"].items() if k != "batch_size"}
    assert errors_of(validator, spec) == []
    Spec.from_dict(spec)


@pytest.mark.parametrize(("patch",), [(p,) for _, p in BAD], ids=[i for i, _ in BAD])
def test_a_bad_spec_fails_both(patch: dict[str, Any],
                               validator: jsonschema.Draft202012Validator) -> None:
    spec = base()
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict) and key != "model":
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = copy.deepcopy(value)
    assert errors_of(validator, spec) != []
    with pytest.raises(SpecError):
        Spec.from_dict(spec)


def test_a_missing_model_fails() -> None:
    spec = base()
    del spec["model"]
    assert not jsonschema.Draft202012Validator(standalone_schema()).is_valid(spec)


SECTIONS: list[tuple[str, tuple[Param, ...], dict[str, Any]]] = [
    ("Training", TRAINING_PARAMS, TrainingSpec().to_dict()),
    ("EarlyStopping", EARLY_STOPPING_PARAMS, EarlyStoppingSpec().to_dict()),
    ("Regularization", REGULARIZATION_PARAMS, RegularizationSpec().to_dict()),
    ("Checkpoints", CHECKPOINT_PARAMS, CheckpointPolicy().to_dict()),
]


@pytest.mark.parametrize(("name", "params", "parsed"), SECTIONS, ids=[s[0] for s in SECTIONS])
def test_section_defaults_are_the_parsers(name: str, params: tuple[Param, ...],
                                          parsed: dict[str, Any]) -> None:
    schema = definitions()[name]
    assert list(schema["properties"]) == list(parsed)
    shown = {key: prop["default"] for key, prop in schema["properties"].items()}
    assert shown == defaults(params) == parsed


SCHEMA_REGISTRIES = [reg for reg in REGISTRIES if reg.in_schema]
ENTRIES = [(reg, name) for reg in SCHEMA_REGISTRIES for name in reg.entries]
LAYERS = "model.layers"


def place(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``spec`` with ``value`` at the dotted ``path`` (``training.lr_schedule``); a layer
    goes first, before the output layer."""
    if path == LAYERS:
        spec["model"] = {"layers": [value, {"type": "dense", "units": 10}]}
        return spec
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


def read(spec: dict[str, Any], path: str) -> Any:
    if path == LAYERS:
        return spec["model"]["layers"][0]
    for key in path.split("."):
        spec = spec[key]
    return spec


@pytest.mark.parametrize(("reg", "name"), ENTRIES, ids=[f"{r.path}:{n}" for r, n in ENTRIES])
def test_registry_defaults_are_the_parsers(reg: Registry, name: str) -> None:
    schema = definitions()[f"{reg.title}.{name}"]
    params = reg.params(name)
    required = {p.name: example(p) for p in params if p.required}
    spec = place(base(), reg.path, {"type": name, **required})
    parsed = read(Spec.from_dict(spec).to_dict(), reg.path)
    shown = {key: prop.get("default") for key, prop in schema["properties"].items()}
    # A null default is decided by other fields (a pool's stride is its pool_size, a bias
    # follows its weight rule), as each field's doc says; the rest are the parser's.
    derived = {"type"} | {key for key, value in shown.items()
                          if value is None and key not in required}
    assert set(shown) == set(parsed)
    assert {k: v for k, v in shown.items() if k not in derived} == \
        {**{k: v for k, v in parsed.items() if k not in derived},
         **dict.fromkeys(required)}
    assert shown["type"] == (name if name == reg.default_type else None)
    assert schema["description"], f"{reg.path} {name} has no one-line summary"
    assert errors_of(Draft202012Validator(standalone_schema()), spec) == []


@pytest.mark.parametrize("reg", SCHEMA_REGISTRIES, ids=[r.path for r in SCHEMA_REGISTRIES])
def test_only_the_default_type_may_omit_type(reg: Registry) -> None:
    defs = definitions()
    required = {name: "type" in defs[f"{reg.title}.{name}"].get("required", [])
                for name in reg.entries}
    assert required == {name: name != reg.default_type for name in reg.entries}


INLINE = [(reg, name) for reg in REGISTRIES if not reg.in_schema for name in reg.entries]


@pytest.mark.parametrize(("reg", "name"), INLINE, ids=[f"{r.path}:{n}" for r, n in INLINE])
def test_every_activation_and_initializer_validates_by_name_and_as_object(
        reg: Registry, name: str, validator: jsonschema.Draft202012Validator) -> None:
    key = "activation" if reg.title == "Activation" else "weight_init"
    for value in (name, {"type": name}):
        spec = place(base(), LAYERS, {"type": "dense", "units": 16, key: value})
        assert errors_of(validator, spec) == []
        Spec.from_dict(spec)


def test_references_follow_the_template() -> None:
    text = json.dumps(job_spec_schema("#/components/schemas/{model}"))
    assert "#/$defs/" not in text
    assert '"#/components/schemas/Training"' in text
    assert "x-allowed" not in text  # words for the docs, not schema keywords
