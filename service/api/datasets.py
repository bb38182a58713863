"""`/v1/datasets`: upload (CSV, NPZ, JSON; raw body or multipart), list, read, delete.

Everything is parsed and checked against the limits before a byte is stored (docs/reliability.md):
a body over `max_upload_bytes` is refused by the bytes read (413, service/bodies.py),
`core.datasets` checks rows, features, NaN/inf and never unpickles (422), and the tenant's
storage quota is checked last (413). The file goes to disk as it arrives and the arrays into
the dataset's parts (service/api/ingest.py); a file too large for one request arrives in
pieces through `/v1/uploads` (service/api/uploads.py) and is named here by its `upload_id`.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from core.datasets import FORMATS, format_for, suffixes
from service.api import data, ingest
from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
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
    FromUploadBody,
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


def _format_of_body() -> str:
    form = format_for(media_type=request.mimetype)
    if form is None:
        own = [f.media_types[0] for f in FORMATS.values()]
        raise ApiError(415, f"unsupported Content-Type {request.mimetype or 'none'!r}: send "
                       f"{_either([*own, 'multipart/form-data'])}",
                       kind="unsupported-media-type")
    return form.name


@contextmanager
def _spooled_upload(query: DatasetUploadQuery
                    ) -> Iterator[tuple[ingest.Spooled, str, str | None, str | None, bool]]:
    """(the spooled file, format, name, target, features_only) from a multipart field `file`
    or the raw body, read to disk as it arrives (service/api/ingest.py)."""
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
        name = name or _safe_base(upload.filename)
        with ingest.spooled_stream(upload.stream) as spooled:
            yield spooled, form.name, name, target, features_only
        return
    fmt = _format_of_body()
    # A small JSON body was read whole to look for an upload_id (below): spool that copy.
    cached = request.get_data(cache=True) if _small_json() else None
    with ingest.spooled_stream(request.stream if cached is None else io.BytesIO(cached)
                               ) as spooled:
        yield spooled, fmt, name, target, features_only


def _checked_flag(field: str, value: str | None) -> bool:
    """A multipart form's boolean field, spelled as a query's would be."""
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise validation_error(field, "must be true or false")


def _small_json() -> bool:
    length = request.content_length
    return request.mimetype == "application/json" and length is not None and length <= 65536


def _upload_reference() -> dict[str, Any] | None:
    """The body `{"upload_id": ...}` that names an upload made in pieces, or None.

    A JSON dataset is an object of X and y (other keys are refused), so an object with
    `upload_id` cannot be one; only a small JSON body is looked at.
    """
    if not _small_json():
        return None
    try:
        body = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        return None  # not JSON: the JSON dataset parser says what is wrong with it
    return body if isinstance(body, dict) and "upload_id" in body else None


def _either(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def _answer(row: Any, created: bool) -> tuple[Response, int, dict[str, str]]:
    body = dataset_json(row)
    return jsonify(body), 201 if created else 200, {"Location": f"/v1/datasets/{body['id']}"}


@bp.post(
    "/datasets",
    responses=responses({201: DatasetOut, 200: DatasetOut}, 404, 409, 413, 415),
    openapi_extensions={"requestBody": UPLOAD_BODY},
)
def upload_dataset(query: DatasetUploadQuery) -> tuple[Response, int, dict[str, str]]:
    """Upload a dataset in one of the formats below, as the raw body or multipart `file`, or
    make one of a file uploaded in pieces: `{"upload_id": "up_...", "name": ..., "target":
    ..., "format": ..., "features_only": ...}` (see `POST /v1/uploads`; the format defaults
    from its filename).

    201 with the new dataset, or 200 with the one you already uploaded with the same bytes
    (read the same way: the same `target`): nothing more is stored or counted.

    `features_only=true`: a dataset without a target, to score with a batch prediction
    (training on it is refused with a 422 naming `dataset`).
    """
    limits = services().settings.limits
    tenant = current_tenant()
    reference = _upload_reference()
    if reference is not None:
        return _dataset_from_upload(FromUploadBody.model_validate(reference), tenant)
    with _spooled_upload(query) as (spooled, fmt, name, target, features_only):
        dataset = ingest.parse(spooled, fmt, target, limits, features_only=features_only)
    with transaction() as session:
        return _answer(*ingest.store(session, tenant, dataset, fmt=fmt, name=name,
                                     sha256=spooled.sha256, limits=limits))


def _dataset_from_upload(body: FromUploadBody, tenant: str) -> tuple[Response, int, dict[str, str]]:
    from store import uploads as store_uploads

    limits = services().settings.limits
    with read_session() as session:
        upload = store_uploads.get(session, tenant, body.upload_id)
        if upload is None:
            raise validation_error("upload_id", f"no upload {body.upload_id!r} (or it expired)")
        if upload.received_bytes < upload.total_bytes:
            raise ApiError(409, f"upload_id: upload {upload.id} has {upload.received_bytes} of"
                           f" its {upload.total_bytes} bytes; send the rest first",
                           kind="conflict", errors=[{"field": "upload_id",
                                                     "message": "the upload is incomplete"}])
        form = (FORMATS.get(body.format) if body.format
                else format_for(filename=upload.filename or ""))
        if form is None:
            told = f"{body.format!r} is not a format" if body.format else \
                f"cannot tell the format of {upload.filename!r}"
            raise validation_error("format", f"{told}: name one of {sorted(FORMATS)}")
        name = body.name or _safe_base(upload.filename)
        with ingest.spooled_upload(session, upload.id, int(upload.total_bytes)) as spooled:
            session.rollback()  # the parts are on disk: end the read before parsing
            dataset = ingest.parse(spooled, form.name, body.target, limits,
                                   features_only=body.features_only)
    with transaction() as session:
        # The upload becomes the dataset: gone first, so the quota counts only the dataset.
        if not store_uploads.delete(session, tenant, body.upload_id):
            raise ApiError(409, f"upload {body.upload_id} was used or deleted meanwhile",
                           kind="conflict")
        return _answer(*ingest.store(session, tenant, dataset, fmt=form.name, name=name,
                                     sha256=spooled.sha256, limits=limits))


def _safe_base(filename: str | None) -> str | None:
    if not filename:
        return None
    base = PurePosixPath(filename.replace("\\", "/")).name[:100]
    return base if re.fullmatch(NAME_PATTERN, base) else None


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
