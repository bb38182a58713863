"""`/v1/models`: register checkpoints as numbered versions of a named model, move aliases,
and predict by alias or version.

The registry's rules live in `store.registry` (numbering, alias spans, what a version holds);
this module checks requests, renders, and tells webhooks when an alias moves.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from service.api import data
from service.api.checkpoints import find_checkpoint, pick_checkpoint
from service.api.common import not_found
from service.api.predict import Target, labels_for_checkpoint, run_prediction
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError
from service.schemas.common import responses
from service.schemas.models import (
    AliasBody,
    AliasHistory,
    AliasPath,
    ModelBody,
    ModelOut,
    ModelPage,
    ModelPath,
    ModelPredictBody,
    VersionBody,
    VersionOut,
    VersionPage,
    VersionPath,
)
from service.schemas.predict import PredictOut
from store import jobs as store_jobs
from store import registry
from store import webhooks as store_webhooks
from store.db import single_statements
from store.models import ModelVersion, RegisteredModel
from store.resources import isoformat

bp = APIBlueprint(
    "models", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="models")], abp_security=[{"bearer": []}],
)


def model_json(session: Any, model: RegisteredModel) -> dict[str, Any]:
    latest = registry.latest_version(session, model.id)
    return {"id": model.id, "name": model.name, "description": model.description,
            "latest_version": None if latest is None else latest.version,
            "aliases": registry.aliases(session, model.id),
            "created_at": isoformat(model.created_at)}


def version_json(model: RegisteredModel, version: ModelVersion,
                 aliases: dict[str, int]) -> dict[str, Any]:
    return {"model": model.name, "version": version.version,
            "checkpoint_id": version.checkpoint_id,
            "checkpoint_sha256": version.checkpoint_sha256, "job_id": version.job_id,
            "dataset_id": version.dataset_id, "dataset_sha256": version.dataset_sha256,
            "metrics": dict(version.metrics or {}),
            "aliases": sorted(a for a, v in aliases.items() if v == version.version),
            "created_at": isoformat(version.created_at)}


def _model(session: Any, name: str) -> RegisteredModel:
    model = registry.get_model(session, current_tenant(), name)
    if model is None:
        raise not_found("model", name)
    return model


@bp.post("/models", responses=responses({201: ModelOut}, 409))
def create_model(body: ModelBody) -> tuple[Response, int, dict[str, str]]:
    """A new model; names are unique per tenant (409 for a taken one)."""
    with transaction() as session:
        model = registry.create_model(session, current_tenant(), body.name, body.description)
        out = model_json(session, model)
    return jsonify(out), 201, {"Location": f"/v1/models/{out['name']}"}


@bp.get("/models", responses=responses({200: ModelPage}))
def list_models() -> Response:
    with read_session() as session:
        items = [model_json(session, m)
                 for m in registry.list_models(session, current_tenant())]
    return jsonify(items=items, next_cursor=None)


@bp.get("/models/<name>", responses=responses({200: ModelOut}, 404))
def get_model(path: ModelPath) -> Response:
    with read_session() as session:
        return jsonify(model_json(session, _model(session, path.name)))


@bp.post("/models/<name>/versions", responses=responses({201: VersionOut}, 404, 409))
def create_version(path: ModelPath, body: VersionBody) -> tuple[Response, int, dict[str, str]]:
    """Register a checkpoint (by id, or a job's best or latest) as the next version."""
    tenant = current_tenant()
    # A new version changes what "newest" resolves to.
    with services().registry_cache.change(tenant, path.name), transaction() as session:
        model = _model(session, path.name)
        if body.job_id is not None:
            job = store_jobs.get(session, tenant, body.job_id)
            if job is None:
                raise not_found("job", body.job_id)
            checkpoint = pick_checkpoint(session, job, body.checkpoint)
            if checkpoint is None:
                raise ApiError(409, f"job {job.id} has no checkpoint yet", kind="no-checkpoint")
        else:
            checkpoint = find_checkpoint(session, str(body.checkpoint_id))
            job = None if checkpoint.job_id is None else \
                store_jobs.get(session, tenant, checkpoint.job_id)
        version = registry.add_version(
            session, model, checkpoint,
            dataset_id=None if job is None else job.dataset_id,
            dataset_sha256=None if job is None else data.dataset_sha256(session, job))
        out = version_json(model, version, {})
    return jsonify(out), 201, {"Location": f"/v1/models/{model.name}/versions/"
                                           f"{out['version']}"}


@bp.get("/models/<name>/versions", responses=responses({200: VersionPage}, 404))
def list_versions(path: ModelPath) -> Response:
    with read_session() as session:
        model = _model(session, path.name)
        aliases = registry.aliases(session, model.id)
        items = [version_json(model, v, aliases) for v in registry.versions(session, model.id)]
    return jsonify(items=items, next_cursor=None)


@bp.get("/models/<name>/versions/<int:version>", responses=responses({200: VersionOut}, 404))
def get_version(path: VersionPath) -> Response:
    with read_session() as session:
        model = _model(session, path.name)
        version = registry.get_version(session, model.id, path.version)
        if version is None:
            raise not_found("version", f"{path.name} v{path.version}")
        return jsonify(version_json(model, version, registry.aliases(session, model.id)))


@bp.put("/models/<name>/aliases/<alias>", responses=responses({200: ModelOut}, 404))
def set_alias(path: AliasPath, body: AliasBody) -> Response:
    """Point the alias at a version; the move is recorded (see its history).

    Answered once every API process serves the new version (the wait is bounded); 503, and
    nothing changed, when they cannot be told.
    """
    with services().registry_cache.change(current_tenant(), path.name), \
            transaction() as session:
        model = _model(session, path.name)
        if registry.get_version(session, model.id, body.version) is None:
            raise not_found("version", f"{path.name} v{body.version}")
        previous = registry.set_alias(session, model.id, path.alias, body.version)
        deliveries = _alias_event(session, model, path.alias, previous, body.version)
        out = model_json(session, model)
    _send(deliveries)
    return jsonify(out)


@bp.delete("/models/<name>/aliases/<alias>", responses=responses({204: None}, 404))
def delete_alias(path: AliasPath) -> tuple[str, int]:
    with services().registry_cache.change(current_tenant(), path.name), \
            transaction() as session:
        model = _model(session, path.name)
        previous = registry.delete_alias(session, model.id, path.alias)
        if previous is None:
            raise not_found("alias", f"{path.name}@{path.alias}")
        deliveries = _alias_event(session, model, path.alias, previous, None)
    _send(deliveries)
    return "", 204


def _alias_event(session: Any, model: RegisteredModel, alias: str, previous: int | None,
                 version: int | None) -> list[str]:
    return store_webhooks.enqueue(session, model.tenant_id, "model.alias_moved", {
        "model": model.name, "alias": alias, "from_version": previous, "to_version": version})


def _send(deliveries: list[str]) -> None:
    for delivery_id in deliveries:
        services().dispatcher.deliver_webhook(delivery_id)


@bp.get("/models/<name>/aliases/<alias>/history", responses=responses({200: AliasHistory}, 404))
def alias_history(path: AliasPath) -> Response:
    """Every version the alias pointed at, oldest first, with when (`to` null: now)."""
    with read_session() as session:
        model = _model(session, path.name)
        spans = registry.alias_history(session, model.id, path.alias)
    if not spans:
        raise not_found("alias", f"{path.name}@{path.alias}")
    return jsonify(items=[{"version": s["version"], "from": isoformat(s["from"]),
                           "to": isoformat(s["to"])} for s in spans])


@bp.post("/models/<name>/predict", responses=responses({200: PredictOut}, 404, 413, 415))
def predict_model(path: ModelPath, body: ModelPredictBody) -> Response:
    """Predict with the version an alias points at, a version by number, or the newest.

    After an alias moves, every API process serves the new version from its next request.
    """
    tenant = current_tenant()
    asked = ("alias", body.alias) if body.alias is not None else \
        ("version", str(body.version)) if body.version is not None else ("newest", "")
    resolved = services().registry_cache.resolve(
        (tenant, path.name, *asked), tenant, path.name,
        lambda: _resolve(tenant, path.name, body.alias, body.version))
    if resolved is None:
        what = (body.alias and f"@{body.alias}") or (body.version and f" v{body.version}")
        raise not_found("model version", f"{path.name}{what or ''}")
    target, number = resolved
    return run_prediction(target, body.inputs, model={"name": path.name, "version": number})


def _resolve(tenant: str, name: str, alias: str | None, version: int | None
             ) -> tuple[Target, int] | None:
    """The checkpoint (with its labels) and version number a predict means, from the
    database: one prebuilt statement, then the labels (cached per checkpoint)."""
    with _reads().connect() as conn:
        row = registry.resolve(conn, tenant, name, alias=alias, version=version)
    if row is None:
        return None
    checkpoint_id, number, job_id = row
    with read_session() as session:
        labels = labels_for_checkpoint(session, checkpoint_id, job_id)
    return Target(checkpoint_id, labels), int(number)


def _reads() -> Any:
    """The engine for one-statement reads (autocommit on PostgreSQL: no BEGIN/ROLLBACK)."""
    extras = services().extras
    engine = extras.get("single_statements")
    if engine is None:
        engine = extras.setdefault("single_statements", single_statements(services().engine))
    return engine
