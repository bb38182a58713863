"""A job spec checked as the service accepts one: the rule that submit, the dry run
(`POST /v1/jobs:validate`) and a reproduction share, kept below the views that call it.

core.spec parses it (every field's rule); here it is held to the service's limits and its
dataset and init checkpoint are resolved for the tenant.
"""

from __future__ import annotations

import re
from typing import Any

from service.api import data
from service.context import services
from service.errors import validation_error
from service.schemas.datasets import NAME_PATTERN


def checked_spec(
    session: Any, tenant: str, body: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """Parse the spec (core.spec), resolve its dataset, check the labels against the output
    units (core.datasets.validate_for_spec) and hold it to the service's limits (README,
    "Configuration": WEIGHTSMITH_MAX_EPOCHS, _MAX_RUNTIME_S) and budgets (core.budget: layers,
    parameters, training memory, FLOPs per epoch): every check a
    submission runs, so the dry run (`/v1/jobs:validate`) passes exactly what submit would.

    Returns (spec, dataset, dry-run report with the resolved `dataset_id`); any violation is a
    422 naming the field.
    """
    from core.budget import Budget, check_job, check_layer_count
    from core.datasets import validate_for_spec
    from core.datasets.validate import check_trainable
    from core.dryrun import dry_run
    from core.spec import Spec

    limits = services().settings.limits
    budget = Budget.of(limits)
    layers = body.get("model", {}).get("layers") if isinstance(body.get("model"), dict) else None
    if isinstance(layers, list):  # before parsing: 10^6 layers took 11 s of CPU to parse
        check_layer_count(len(layers), budget)
    spec = Spec.from_dict(body)
    if spec.name is not None and not re.fullmatch(NAME_PATTERN, str(spec.name)):
        raise validation_error("name", f"must match {NAME_PATTERN}")
    if spec.training.epochs > limits.max_epochs:
        raise validation_error("training.epochs", f"must be at most {limits.max_epochs}")
    runtime = spec.training.max_runtime_s
    if runtime is not None and runtime > limits.max_runtime_s:
        raise validation_error("training.max_runtime_s", f"must be at most {limits.max_runtime_s}")
    dataset_id, dataset = data.lookup(session, tenant, spec.dataset)
    check_trainable(dataset)  # before the dry run: "no target" is the answer, not a shape
    if spec.init_checkpoint is not None:
        from store import checkpoints as store_checkpoints

        # The worker loads it by id alone: only the tenant's own weights may get that far.
        if store_checkpoints.get(session, spec.init_checkpoint, tenant_id=tenant) is None:
            raise validation_error(
                "init_checkpoint", f"checkpoint {spec.init_checkpoint!r} not found"
            )
    input_shape = tuple(int(n) for n in dataset.X.shape[1:])
    report = dry_run(spec, input_shape, int(dataset.X.shape[0]))
    check_job(spec, report, budget)
    validate_for_spec(dataset, spec)
    report = {**report, "input_shape": list(input_shape), "n_samples": int(dataset.X.shape[0]),
              "dataset_id": dataset_id}
    return spec, dataset, report
