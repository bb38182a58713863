"""`/v1/checkpoints`: metadata with weight statistics, weights.npz, one layer, import.

A stored checkpoint is either the worker's internal training state or an imported weights.npz;
`core.checkpoint.load_checkpoint` reads both, and the network it returns is cached by id.
weights.npz records no loss, so an import may name one (`loss`): it is kept in the row's
model_spec JSON under IMPORT_LOSS_KEY (no schema change) and sets predict's output link.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from service.api.common import not_found
from service.api.data import job_labels
from service.api.npz_guard import DECOMPRESSION_FACTOR, check_npz
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.limits import check_storage
from service.schemas.checkpoints import (
    IMPORT_BODY,
    CheckpointDetail,
    CheckpointImportQuery,
    CheckpointOut,
    CheckpointPath,
    LayerJson,
    LayerPath,
)
from service.schemas.common import responses
from service.spec_limits import check_spec_text
from store.resources import isoformat

bp = APIBlueprint(
    "checkpoints", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="checkpoints")], abp_security=[{"bearer": []}],
)

NPY = "application/x-npy"
NPZ = "application/x-npz"
IMPORT_LOSS_KEY = "loss"  # beside "layers" in an imported checkpoint's model_spec column


def checkpoint_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "job_id": row.job_id,
        "epoch": row.epoch,
        "kind": row.kind,
        "metrics": dict(row.metrics or {}),
        "size_bytes": int(row.size_bytes),
        "sha256": row.sha256,
        "created_at": isoformat(row.created_at),
    }


def imported_loss(row: Any) -> str | None:
    """The loss named at import (it sets predict's link), or None: raw outputs."""
    if row.kind != "imported" or not isinstance(row.model_spec, dict):
        return None
    loss = row.model_spec.get(IMPORT_LOSS_KEY)
    return loss if isinstance(loss, str) else None


def public_model_spec(row: Any) -> dict[str, Any] | None:
    """The row's model spec as the user wrote it: the import's loss is shown on its own."""
    if not isinstance(row.model_spec, dict):
        return None
    return {k: v for k, v in row.model_spec.items()
            if not (row.kind == "imported" and k == IMPORT_LOSS_KEY)}


def find_checkpoint(session: Any, checkpoint_id: str) -> Any:
    from store import checkpoints as store_checkpoints

    row = store_checkpoints.get(session, checkpoint_id, tenant_id=current_tenant())
    if row is None:
        raise not_found("checkpoint", checkpoint_id)
    return row


def pick_checkpoint(session: Any, job: Any, which: str) -> Any:
    """The job's "best" checkpoint by its policy's monitor (core.checkpoint_policy.best; the
    latest when none has the metric) or its "latest"; None before its first checkpoint."""
    from core.checkpoint_policy import best
    from core.spec import Spec
    from store import checkpoints as store_checkpoints

    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    picked = None
    if which == "best":
        rows = store_checkpoints.list_for_job(session, job.id)
        picked = best(Spec.from_dict(job.spec).checkpoints, rows)
    return picked or store_checkpoints.latest_for_job(session, job.id)


def network_for(checkpoint_id: str) -> Any:
    """The loaded network of a checkpoint, from the model cache when it is there.

    Checkpoints never change once written, so a cached network never goes stale. Call it
    outside any open session: it opens its own, and SQLite transactions (BEGIN IMMEDIATE, see
    store/db.py) in one thread would wait on each other until the busy timeout.
    """
    from core.checkpoint import load_checkpoint
    from store import checkpoints as store_checkpoints

    def load() -> Any:
        with read_session() as session:
            row = store_checkpoints.get(session, checkpoint_id)
            blob = store_checkpoints.get_blob(session, checkpoint_id)
            loss = imported_loss(row) if row is not None else None
        if blob is None:
            raise not_found("checkpoint", checkpoint_id)
        return load_checkpoint(blob, loss=loss)

    return services().model_cache.get_or_load(checkpoint_id, load)


@bp.get("/checkpoints/<checkpoint_id>", responses=responses({200: CheckpointDetail}, 404))
def get_checkpoint(path: CheckpointPath) -> Response:
    """Metadata plus per-layer statistics (shape, mean, std, min, max, Frobenius norm)."""
    from core.checkpoint import weight_stats

    with read_session() as session:
        row = find_checkpoint(session, path.checkpoint_id)
        body = checkpoint_json(row)
        body["model_spec"] = public_model_spec(row)
    network = network_for(row.id)  # outside the session: SQLite sessions must never nest
    body["layers"] = weight_stats(network)
    # A trained checkpoint's state names its loss; an import without one predicts raw outputs.
    body["loss"] = imported_loss(row) if row.kind == "imported" else network.loss_name
    return jsonify(body)


@bp.delete("/checkpoints/<checkpoint_id>", responses=responses({204: None}, 404, 409))
def delete_checkpoint(path: CheckpointPath) -> tuple[str, int]:
    """Delete a checkpoint, trained or imported (409 while a queued or running job may
    resume or warm-start from it)."""
    from store.deletion import delete_checkpoint as delete
    from store.errors import NotFound

    with transaction() as session:
        try:
            delete(session, current_tenant(), path.checkpoint_id)
        except NotFound:
            raise not_found("checkpoint", path.checkpoint_id) from None
    services().model_cache.discard(path.checkpoint_id)
    return "", 204


@bp.get(
    "/checkpoints/<checkpoint_id>/weights.npz",
    responses=responses({200: {"description": "weights.npz (docs/checkpoint-format.md)",
                               "content": {NPZ: {"schema": {"type": "string",
                                                            "format": "binary"}}}}}, 404),
)
def download_weights(path: CheckpointPath) -> Response:
    """The weight matrices as an .npz readable with numpy.load(allow_pickle=False)."""
    from core.checkpoint import export_weights_npz

    with read_session() as session:
        row = find_checkpoint(session, path.checkpoint_id)
        labels = None
        if row.job_id is not None:  # a trained checkpoint: its job's dataset has the labels
            from store import jobs as store_jobs

            job = store_jobs.get(session, current_tenant(), row.job_id)
            labels = job_labels(session, current_tenant(), job) if job else None
    network = network_for(row.id)
    payload = export_weights_npz(network, classes=labels)
    return Response(payload, mimetype=NPZ, headers={
        "Content-Disposition": f'attachment; filename="{row.id}.npz"',
    })


@bp.get(
    "/checkpoints/<checkpoint_id>/layers/<name>",
    responses=responses({
        200: {"description": "one array, as JSON or .npy by Accept",
              "content": {"application/json": {"schema": LayerJson.model_json_schema()},
                          NPY: {"schema": {"type": "string", "format": "binary"}}}},
    }, 404, 406),
)
def get_layer(path: LayerPath) -> Response:
    """One weight array, e.g. `0.weight`: JSON, or `.npy` with Accept: application/x-npy."""
    choice = request.accept_mimetypes.best_match(
        ["application/json", NPY, "application/octet-stream"]
    )
    if request.headers.get("Accept") in (None, ""):
        choice = "application/json"
    if choice is None:
        raise ApiError(406, "acceptable: application/json, application/x-npy",
                       kind="not-acceptable")
    with read_session() as session:
        row = find_checkpoint(session, path.checkpoint_id)
    network = network_for(row.id)
    arrays = {**network.params, **network.buffers}
    if path.name not in arrays:
        raise not_found("array", path.name)
    array = np.asarray(arrays[path.name])
    if choice == "application/json":
        return jsonify(LayerJson(name=path.name, shape=list(array.shape), dtype=str(array.dtype),
                                 values=array.tolist()).model_dump())
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return Response(buffer.getvalue(), mimetype=choice)


def inference_problem(network: Any, rows: int, limits: Any) -> str | None:
    """Why a forward pass of `network` over `rows` rows would not fit the predict budget
    (``limits.max_predict_memory_bytes``; predict runs its rows in chunks of PREDICT_BATCH)."""
    from core.budget import inference_error, inference_memory
    from core.network import PREDICT_BATCH

    batch = min(rows, PREDICT_BATCH)
    per_layer = inference_memory(network.input_shape,
                                 [layer.output_shape for layer in network.layers],
                                 batch, np.dtype(network.dtype).itemsize)
    return inference_error(per_layer, batch, limits.max_predict_memory_bytes,
                           [type(layer).__name__ for layer in network.layers])


def check_import_budget(network: Any, limits: Any) -> None:
    """An import must have at most `max_layers` layers and predict at least one row within
    the predict budget (a 1 KB weights.npz of a padded conv grew an API process by 3 GB)."""
    from core.budget import Budget, check_layer_count

    check_layer_count(len(network.layers), Budget.of(limits))
    problem = inference_problem(network, 1, limits)
    if problem is not None:
        raise validation_error("file", problem)


def _read_import(query: CheckpointImportQuery) -> tuple[bytes, str | None, str | None]:
    """(bytes, model spec JSON, loss) from the raw body or the multipart fields."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise validation_error("file", "a multipart import needs a `file` field")
        from core.spec import LOSS_TYPES

        loss = query.loss or request.form.get("loss") or None
        if loss is not None and loss not in LOSS_TYPES:
            raise validation_error("loss", f"unknown loss {loss!r}; expected one of "
                                   f"{sorted(LOSS_TYPES)}")
        return upload.read(), query.spec or request.form.get("spec"), loss
    if request.mimetype not in (NPZ, "application/octet-stream", "application/zip"):
        raise ApiError(415, f"unsupported Content-Type {request.mimetype or 'none'!r}: send "
                       "application/x-npz or multipart/form-data", kind="unsupported-media-type")
    return request.get_data(cache=True), query.spec, query.loss


def embedded_spec(data: bytes) -> bytes:
    """The raw text of a weights.npz's `__spec__` (b"" if absent or not text): only that
    member is inflated, within check_npz's bounds."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if "__spec__" not in npz.files:
                return b""
            value = npz["__spec__"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise validation_error("file", f"not a readable .npz: {exc}") from None
    return str(value[()]).encode("utf-8") if value.ndim == 0 and value.dtype.kind == "U" else b""


def _with_spec(data: bytes, spec_text: str) -> bytes:
    """Add (or replace) `__spec__` in a weights.npz, after core checked the model spec."""
    from core.spec import ModelSpec

    try:
        spec = json.loads(spec_text)
    except ValueError as exc:
        raise validation_error("spec", f"not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise validation_error("spec", "must be a JSON object (the model spec)")
    model = ModelSpec.from_dict(spec)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "__spec__"}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise validation_error("file", f"not a readable .npz: {exc}") from None
    arrays["__spec__"] = np.array(json.dumps(model.to_dict()))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@bp.post(
    "/checkpoints",
    responses=responses({201: CheckpointOut}, 413, 415),
    openapi_extensions={"requestBody": IMPORT_BODY},
)
def import_checkpoint(query: CheckpointImportQuery) -> tuple[Response, int, dict[str, str]]:
    """Import weights (a weights.npz, docs/checkpoint-format.md) to warm-start jobs or to predict.

    `loss` (optional) names the loss the weights were trained with, so predict applies its
    link (softmax/sigmoid) and returns classes; without it predict returns raw outputs.
    """
    import hashlib

    from core.checkpoint import check_importable, load_checkpoint, model_spec_dict
    from store import checkpoints as store_checkpoints

    data, spec_text, loss = _read_import(query)
    if not data:
        raise validation_error("file", "the upload is empty")
    limits = services().settings.limits
    check_npz(data, limits.max_upload_bytes * DECOMPRESSION_FACTOR)
    if spec_text:
        check_spec_text(spec_text, limits, "spec")
        data = _with_spec(data, spec_text)
    else:
        check_spec_text(embedded_spec(data), limits, "file")
    # CheckpointError -> 422: names, shapes, dtypes, spec must agree; finite weights, std > 0
    network = load_checkpoint(data, loss=loss)
    check_importable(network)
    n_params = sum(int(np.asarray(a).size) for a in network.params.values())
    if n_params > limits.max_model_params:
        raise validation_error("file", f"{n_params} parameters exceed {limits.max_model_params}")
    check_import_budget(network, limits)
    tenant = current_tenant()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        model_spec = model_spec_dict(json.loads(str(npz["__spec__"][()])))
    if loss is not None:
        model_spec = {**model_spec, IMPORT_LOSS_KEY: loss}
    with transaction() as session:
        check_storage(session, tenant, len(data), limits)
        row = store_checkpoints.import_checkpoint(
            session, tenant, blob=data, sha256=hashlib.sha256(data).hexdigest(),
            model_spec=model_spec,
        )
        body = checkpoint_json(row)
    services().model_cache.get_or_load(body["id"], lambda: network)
    return jsonify(body), 201, {"Location": f"/v1/checkpoints/{body['id']}"}
