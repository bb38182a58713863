"""One APIBlueprint per resource; `register_blueprints` mounts them all on an app."""

from __future__ import annotations

from flask_openapi3 import OpenAPI


def register_blueprints(app: OpenAPI) -> None:
    from service.api import (
        batch_predictions,
        checkpoints,
        compare,
        datasets,
        diagnostics,
        events,
        exports,
        forks,
        health,
        jobs,
        keys,
        lr_range_tests,
        metrics,
        models,
        predict,
        reproducibility,
        sweeps,
        uploads,
        webhooks,
    )
    from service.api.common import init_body_guard

    init_body_guard(app)

    for module in (health, metrics, datasets, uploads, compare, jobs, diagnostics, events,
                   checkpoints, exports, predict, forks, models, reproducibility, webhooks, keys,
                   batch_predictions, sweeps, lr_range_tests):
        app.register_api(module.bp)
