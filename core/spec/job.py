"""The whole job spec: ``Spec.from_dict`` / ``to_dict`` and the cross-field rules.

The top level declares its keys once in :data:`JOB_PARAMS` (the sections point at their own
schemas, built by ``core.spec.schema``); ``docs/spec.md`` is generated from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import SpecError
from core.spec.fields import MISSING, Section, show
from core.spec.layers import SHAPE_PRESERVING
from core.spec.model import ModelSpec, parse_model
from core.spec.optim import OPTIMIZER_ALIASES, OptimizerSpec, parse_optimizer
from core.spec.params import Param
from core.spec.training import (
    CLASSIFICATION_LOSSES,
    CheckpointPolicy,
    LossSpec,
    RegularizationSpec,
    TrainingSpec,
    default_monitor,
    parse_checkpoints,
    parse_loss,
    parse_regularization,
    parse_training,
)

BUILTIN_PREFIX = "builtin:"


def _section(name: str, ref: str, doc: str, example: object,
             default: object = None) -> Param:
    """A nested object: parsed by its own parser, described by the schema ``$defs/ref``."""
    return Param(name, "custom", default, schema={"$ref": f"#/$defs/{ref}"}, doc=doc,
                 example=example)


NAME = Param("name", "string", None, example="digits-mlp",
             doc="A label for the job, shown in listings.")
DATASET = Param(
    "dataset", "string", None, example="builtin:digits",
    doc=f"An uploaded dataset's id or name (POST /v1/datasets; a name shared by several "
        "uploads means the newest, and an id wins over a name that spells it), or "
        f"{BUILTIN_PREFIX}<name> for a dataset that ships with Weightsmith (GET "
        "/v1/datasets?builtin=true lists them). Required to submit a job.")
INIT_CHECKPOINT = Param(
    "init_checkpoint", "string", None, example="ckpt_01M8DHMEH6YQ12TB2SA0YE74HP",
    doc="A checkpoint id whose weights start the training (warm start); its model must "
        "match.")
MODEL = _section("model", "Model", "The network: a list of layers applied in order.",
                 {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                             {"type": "dense", "units": 10}]}, MISSING)
LOSS = _section("loss", "Loss", "The loss to minimise; default cross_entropy.",
                {"type": "cross_entropy"})
OPTIMIZER = _section("optimizer", "Optimizer", "The optimizer (torch.optim semantics); "
                     "default adam.", {"type": "adam", "learning_rate": 0.001})
REGULARIZATION = _section("regularization", "Regularization", "L1 / L2 penalties on the "
                          "weights; none by default.", {"l2": 0.0001})
TRAINING = _section("training", "Training", "Epochs, batches, validation split, schedule, "
                    "early stopping.", {"epochs": 20, "batch_size": 32})
CHECKPOINTS = _section("checkpoints", "Checkpoints", "Which checkpoints are written and kept.",
                       {"every_epochs": 1, "keep_last": 3})
JOB_PARAMS: tuple[Param, ...] = (NAME, DATASET, INIT_CHECKPOINT, MODEL, LOSS, OPTIMIZER,
                                 REGULARIZATION, TRAINING, CHECKPOINTS)


def raise_collected(errors: list[SpecError]) -> None:
    """Raise the one error, or all of them bundled in a SpecErrors."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecError.many(errors)


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A validated job spec; attribute names are the JSON keys (:data:`JOB_PARAMS`).

    ``dataset`` is an uploaded dataset's id or name or ``builtin:<name>``; it may be None when the
    caller passes arrays itself (``core.train``).
    """

    name: str | None = NAME.default
    dataset: str | None = DATASET.default
    init_checkpoint: str | None = INIT_CHECKPOINT.default
    model: ModelSpec
    loss: LossSpec = field(default_factory=LossSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    regularization: RegularizationSpec = field(default_factory=RegularizationSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    checkpoints: CheckpointPolicy = field(default_factory=CheckpointPolicy)

    @property
    def task(self) -> str:
        """"classification" for cross_entropy / binary_cross_entropy, else "regression"."""
        return "classification" if self.loss.type in CLASSIFICATION_LOSSES else "regression"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """Validate a JSON spec; raises SpecError (one problem) or SpecErrors (several)."""
        errors: list[SpecError] = []
        spec = parse_spec(data, errors)
        raise_collected(errors)
        assert spec is not None
        return spec

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, every default filled; ``Spec.from_dict(s.to_dict()) == s``."""
        return {
            "name": self.name, "dataset": self.dataset, "init_checkpoint": self.init_checkpoint,
            "model": self.model.to_dict(), "loss": self.loss.to_dict(),
            "optimizer": self.optimizer.to_dict(), "regularization": self.regularization.to_dict(),
            "training": self.training.to_dict(), "checkpoints": self.checkpoints.to_dict(),
        }


def parse_spec(data: Any, errors: list[SpecError]) -> Spec | None:
    s = Section.of(data, "", errors)
    if s is None:
        return None
    s.check_keys(p.name for p in JOB_PARAMS)
    name = NAME.read(s)
    dataset = _dataset(s)
    init_checkpoint = INIT_CHECKPOINT.read(s)
    model = parse_model(s.data.get("model"), "model", errors) if "model" in s.data else None
    if model is None and "model" not in s.data:
        s.error("model", "is required")
    loss = parse_loss(s.data.get("loss"), "loss", errors)
    optimizer, alias = parse_optimizer(s.data.get("optimizer"), "optimizer", errors)
    regularization = parse_regularization(s.data.get("regularization"), "regularization",
                                          errors)
    training = parse_training(s.data.get("training"), "training", errors)
    training = _apply_alias(alias, training, s.data.get("training"), errors)
    checkpoints = parse_checkpoints(s.data.get("checkpoints"), "checkpoints", errors,
                                    default_monitor(training.validation_split))
    if model is None:
        return None
    spec = Spec(name=name, dataset=dataset, init_checkpoint=init_checkpoint, model=model,
                loss=loss, optimizer=optimizer, regularization=regularization,
                training=training, checkpoints=checkpoints)
    check_cross_fields(spec, errors)
    return spec


def _dataset(s: Section) -> str | None:
    ref: str | None = DATASET.read(s)
    if ref is not None and ref.startswith(BUILTIN_PREFIX):
        from core.datasets.builtin import BUILTINS

        if ref[len(BUILTIN_PREFIX):] not in BUILTINS:
            s.error("dataset", f"unknown builtin dataset {ref!r}; expected one of "
                    f"{[BUILTIN_PREFIX + n for n in sorted(BUILTINS)]}")
    return ref


def _apply_alias(alias: str | None, training: TrainingSpec, raw: Any,
                 errors: list[SpecError]) -> TrainingSpec:
    """Classic optimizer names fix the batch size; an explicit other value is a conflict."""
    if alias is None:
        return training
    meaning = OPTIMIZER_ALIASES[alias]
    given = raw.get("batch_size") if isinstance(raw, Mapping) else None
    forced = meaning.batch_size
    if forced is None:
        if given == "full":
            errors.append(SpecError("training.batch_size", (
                f"conflicts with optimizer.type {alias!r} ({meaning.meaning}), which needs an "
                "integer batch size; use 'gd' for full-batch gradient descent")))
        return training
    if given is not None and given != forced:
        errors.append(SpecError("training.batch_size", (
            f"conflicts with optimizer.type {alias!r} ({meaning.meaning}), which uses "
            f"batch_size {show(forced)}; remove training.batch_size or set it to "
            f"{show(forced)}, got {show(given)}")))
        return training
    return dataclasses.replace(training, batch_size=forced)


def output_units(model: ModelSpec) -> tuple[int, int] | None:
    """(index, units) of the dense layer that sets the output width, if the spec fixes it."""
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        if layer.type == "dense":
            return i, int(getattr(layer, "units"))  # noqa: B009 - LayerSpec union
        if layer.type not in SHAPE_PRESERVING:
            return None
    return None


def check_cross_fields(spec: Spec, errors: list[SpecError]) -> None:
    """Rules that involve more than one section, each reported at the field to change.

    Runs after the sections, so it must not pile consequences onto an error already
    reported: model rules are skipped when a layer or the loss was invalid (defaults stood in),
    and no second error is added at a field that already has one.
    """
    failed = {e.field for e in errors}
    found: list[SpecError] = []
    if not any(f.startswith(("model", "loss")) for f in failed):
        _check_model_against_loss(spec, found)
    _check_monitors(spec, found)
    errors.extend(e for e in found if e.field not in failed)


def _check_model_against_loss(spec: Spec, errors: list[SpecError]) -> None:
    _check_output_link(spec, errors)
    loss, units = spec.loss, output_units(spec.model)
    if units is not None and loss.type == "cross_entropy" and units[1] < 2:
        errors.append(SpecError(f"model.layers[{units[0]}].units", (
            "cross_entropy needs one output unit per class (at least 2), got 1; use "
            "binary_cross_entropy for a single logit")))
    if units is not None and loss.class_weights is not None \
            and len(loss.class_weights) != units[1]:
        errors.append(SpecError("loss.class_weights", (
            f"has {len(loss.class_weights)} weights but the output layer "
            f"model.layers[{units[0]}] has {units[1]} units (one weight per class)")))


def _check_monitors(spec: Spec, errors: list[SpecError]) -> None:
    t = spec.training
    monitors = [("checkpoints.monitor", spec.checkpoints.monitor)]
    if t.early_stopping is not None:
        monitors.append(("training.early_stopping.monitor", t.early_stopping.monitor))
    if t.lr_schedule is not None and t.lr_schedule.monitor is not None:
        monitors.append(("training.lr_schedule.monitor", t.lr_schedule.monitor))
    for path, monitor in monitors:
        if monitor.startswith("val_") and t.validation_split == 0:
            errors.append(SpecError(path, f"{monitor!r} needs training.validation_split > 0; "
                                    f"monitor {monitor[4:]!r} instead"))
        if "accuracy" in monitor and spec.task != "classification":
            errors.append(SpecError(path, f"{monitor!r} exists only for classification "
                                    f"losses, not {spec.loss.type}"))


def _check_output_link(spec: Spec, errors: list[SpecError]) -> None:
    """cross_entropy / BCE take logits: a final softmax / sigmoid would be applied twice."""
    links = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
    link = links.get(spec.loss.type)
    layers = spec.model.layers
    index = len(layers) - 1
    while index > 0 and layers[index].type == "dropout":
        index -= 1
    activation = getattr(layers[index], "activation", None) if layers else None
    if link is not None and activation is not None and activation.type == link:
        errors.append(SpecError(f"model.layers[{index}].activation", (
            f"last layer (model.layers[-1] is index {len(layers) - 1}): {spec.loss.type} "
            f"takes logits and applies {link} itself; remove this {link} (predict returns "
            "probabilities)")))
