"""`/v1/datasets`: upload (CSV, NPZ, JSON; raw body or multipart), list, read, delete.

Everything is parsed and checked against the limits before a byte is stored (docs/reliability.md):
Werkzeug refuses bodies over `max_upload_bytes` (413), `core.datasets` checks rows, features,
NaN/inf and never unpickles (422), and the tenant's storage quota is checked last (413).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from core.datasets import FORMATS, format_for, suffixes
from service.api import data
from service.api.common import not_found
from service.api.npz_guard import DECOMPRESSION_FACTOR, check_npz
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.limits import check_storage
from service.schemas.common import responses
from service.schemas.datasets import (
    NAME_PATTERN,
    TARGET_PATTERN,
    UPLOAD_BODY,
    DatasetListQuery,
    DatasetOut,
    DatasetPage,
    DatasetPath,
    DatasetUploadQuery,
)
from store.resources import isoformat

bp = APIBlueprint(
    "datasets", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="datasets")], abp_security=[{"bearer": []}],
)

def dataset_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "format": row.format,
        "n_rows": row.n_rows,
        "x_shape": list(row.x_shape),
        "y_shape": list(row.y_shape),
        "kind": row.kind,
        "classes": row.classes,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "builtin": bool(getattr(row, "builtin", False)),
        "created_at": isoformat(row.created_at),
    }


def builtin_json(name: str) -> dict[str, Any]:
    ds = data.builtin(name)
    return {
        "id": data.BUILTIN_PREFIX + name, "name": name, "format": "builtin",
        "n_rows": int(ds.X.shape[0]), "x_shape": list(ds.X.shape), "y_shape": list(ds.y.shape),
        "kind": ds.kind, "classes": ds.classes, "sha256": None, "size_bytes": 0,
        "builtin": True, "created_at": None,
    }


def _checked_text(field: str, value: str | None, pattern: str) -> str | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(pattern, value):
        raise validation_error(field, f"must match {pattern}")
    return value


def _read_upload(query: DatasetUploadQuery
                 ) -> tuple[bytes, str, str | None, str | None, bool]:
    """(bytes, format, name, target, features_only) from a multipart field `file` or the
    raw body."""
    name, target, features_only = query.name, query.target, query.features_only
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise validation_error("file", "a multipart upload needs a `file` field")
        form = format_for(media_type=upload.mimetype, filename=upload.filename)
        if form is None:
            raise ApiError(415, f"cannot tell the format of {upload.filename!r}: use a "
                           f"{_either(suffixes())} file", kind="unsupported-media-type")
        name = name or _checked_text("name", request.form.get("name"), NAME_PATTERN)
        target = target or _checked_text("target", request.form.get("target"), TARGET_PATTERN)
        features_only = features_only or _checked_flag("features_only",
                                                       request.form.get("features_only"))
        if name is None and upload.filename:
            # Only the base name, and only if it is a safe name: a path must never get through.
            base = PurePosixPath(upload.filename.replace("\\", "/")).name[:100]
            name = base if re.fullmatch(NAME_PATTERN, base) else None
        return upload.read(), form.name, name, target, features_only
    form = format_for(media_type=request.mimetype)
    if form is None:
        own = [f.media_types[0] for f in FORMATS.values()]
        raise ApiError(415, f"unsupported Content-Type {request.mimetype or 'none'!r}: send "
                       f"{_either([*own, 'multipart/form-data'])}",
                       kind="unsupported-media-type")
    return request.get_data(cache=True), form.name, name, target, features_only


def _checked_flag(field: str, value: str | None) -> bool:
    """A multipart form's boolean field, spelled as a query's would be."""
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise validation_error(field, "must be true or false")


def _either(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


@bp.post(
    "/datasets",
    responses=responses({201: DatasetOut, 200: DatasetOut}, 413, 415),
    openapi_extensions={"requestBody": UPLOAD_BODY},
)
def upload_dataset(query: DatasetUploadQuery) -> tuple[Response, int, dict[str, str]]:
    """Upload a dataset in one of the formats below, as the raw body or multipart `file`.

    201 with the new dataset, or 200 with the one you already uploaded with the same bytes
    (read the same way: the same `target`): nothing more is stored or counted.

    `features_only=true`: a dataset without a target, to score with a batch prediction
    (training on it is refused with a 422 naming `dataset`).
    """
    from core.datasets import DatasetLimits, parse_dataset

    raw, fmt, name, target, features_only = _read_upload(query)
    if not raw:
        raise validation_error("file", "the upload is empty")
    limits = services().settings.limits
    if fmt == "npz":
        check_npz(raw, limits.max_upload_bytes * DECOMPRESSION_FACTOR)
    try:
        dataset = parse_dataset(
            raw, fmt, target=target, features_only=features_only,
            limits=DatasetLimits(
                max_rows=limits.max_dataset_rows,
                max_features=limits.max_dataset_features,
                max_bytes=limits.max_upload_bytes,
            ),
        )
    except (csv.Error, UnicodeError, ValueError, TypeError) as exc:
        # core reports what it recognises as DatasetError (422 via errors.py); anything the
        # parsers raise beyond that is still a bad upload, never a server error.
        if type(exc).__module__.startswith("core"):
            raise
        raise validation_error("file", f"cannot parse the {fmt} upload: {exc}") from None
    sha256 = hashlib.sha256(raw).hexdigest()
    # Compressed before the transaction, which holds SQLite's write lock while it is open.
    blob = data.dataset_to_npz(dataset.X, dataset.y)
    tenant = current_tenant()
    from store import datasets as store_datasets

    with transaction() as session:
        copy_of = data.stored_copy(session, tenant, sha256, fmt, dataset)
        if copy_of is not None:
            body = dataset_json(copy_of)
            return jsonify(body), 200, {"Location": f"/v1/datasets/{body['id']}"}
        check_storage(session, tenant, len(blob), limits)
        row = store_datasets.create(
            session, tenant,
            name=name or f"dataset.{fmt}", format=fmt, n_rows=int(dataset.X.shape[0]),
            x_shape=[int(n) for n in dataset.X.shape], y_shape=[int(n) for n in dataset.y.shape],
            kind=dataset.kind, classes=dataset.classes,
            sha256=sha256, size_bytes=len(blob), blob=blob,
        )
        body = dataset_json(row)
    return jsonify(body), 201, {"Location": f"/v1/datasets/{body['id']}"}


@bp.get("/datasets", responses=responses({200: DatasetPage}))
def list_datasets(query: DatasetListQuery) -> Response:
    """List your uploaded datasets, newest first; `?builtin=true` lists the builtin ones."""
    if query.builtin:
        return jsonify(items=[builtin_json(n) for n in data.builtin_names()], next_cursor=None)
    from store import datasets as store_datasets

    with read_session() as session:
        rows, next_cursor = store_datasets.list_page(
            session, current_tenant(), limit=query.limit, cursor=query.cursor
        )
        items = [dataset_json(r) for r in rows]
    return jsonify(items=items, next_cursor=next_cursor)


@bp.get("/datasets/<dataset_id>", responses=responses({200: DatasetOut}, 404))
def get_dataset(path: DatasetPath) -> Response:
    """Read one dataset's metadata (also `builtin:<name>`)."""
    ident = path.dataset_id
    if ident.startswith(data.BUILTIN_PREFIX):
        name = ident[len(data.BUILTIN_PREFIX):]
        if name not in data.builtin_names():
            raise not_found("dataset", ident)
        return jsonify(builtin_json(name))
    from store import datasets as store_datasets

    with read_session() as session:
        row = store_datasets.get(session, current_tenant(), ident)
        if row is None:
            raise not_found("dataset", ident)
        return jsonify(dataset_json(row))


@bp.delete("/datasets/<dataset_id>", responses=responses({204: None}, 404, 409))
def delete_dataset(path: DatasetPath) -> tuple[str, int]:
    """Delete an uploaded dataset (jobs that used it keep their results)."""
    if path.dataset_id.startswith(data.BUILTIN_PREFIX):
        raise ApiError(409, "builtin datasets cannot be deleted", kind="conflict")
    from store import datasets as store_datasets

    with transaction() as session:
        # Conflict (409) while a queued or running job uses it, or a model version records
        # it: store.datasets owns the rule.
        if not store_datasets.delete(session, current_tenant(), path.dataset_id):
            raise not_found("dataset", path.dataset_id)
    return "", 204
