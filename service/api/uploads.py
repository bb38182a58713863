"""`/v1/uploads`: a file too large for one request, sent in pieces and resumed after a break.

`POST /v1/uploads {"size_bytes", "filename"}` starts one (its size counts against the storage
quota at once); each `PUT /v1/uploads/{id}` carries `Content-Range: bytes a-b/size` and the
bytes a..b; `GET` says how many bytes have arrived, which is where a client resumes; then
`POST /v1/datasets {"upload_id": id}` parses the file into a dataset and deletes the upload.
An unfinished upload is deleted `upload_expiry_s` after it started.

A piece is stored in one transaction (store/uploads.py): a body cut off half-way, a gap, a
resent piece whose bytes differ, or a range that contradicts the upload is refused with a
problem naming `Content-Range`, and nothing of it is kept.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.limits import check_storage
from service.schemas.common import responses
from service.schemas.uploads import UploadCreateBody, UploadOut, UploadPath
from store.columns import utcnow
from store.errors import Conflict, InvalidValue
from store.resources import isoformat

bp = APIBlueprint(
    "uploads", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="uploads")], abp_security=[{"bearer": []}],
)

HEADER = "Content-Range"
# ASCII digits only (int() would take "+5", " 5", "1_000" and Arabic-Indic digits), at
# most 19 of them.
RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


def upload_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "filename": row.filename, "size_bytes": int(row.total_bytes),
            "received_bytes": int(row.received_bytes),
            "complete": row.received_bytes == row.total_bytes,
            "created_at": isoformat(row.created_at), "expires_at": isoformat(row.expires_at)}


def range_error(status: int, message: str, kind: str = "invalid-content-range") -> ApiError:
    return ApiError(status, f"{HEADER}: {message}", kind=kind,
                    errors=[{"field": HEADER, "message": message}])


def parse_content_range(value: str | None, total: int) -> tuple[int, int]:
    """(first byte, length) of `bytes a-b/total`; 400 (416 past the end) naming the header."""
    if value is None:
        raise range_error(400, "required: bytes <first>-<last>/<size>")
    match = RANGE.fullmatch(value)
    if match is None:
        raise range_error(400, f"{value[:80]!r} is not bytes <first>-<last>/<size> in digits")
    first, last, size = (int(group) for group in match.groups())
    if size != total:
        raise range_error(400, f"the size {size} is not the upload's {total} bytes")
    if first > last:
        raise range_error(400, f"the first byte {first} is after the last {last}")
    if last >= total:
        raise range_error(416, f"byte {last} is past the upload's {total} bytes")
    length = last - first + 1
    if request.content_length is not None and request.content_length != length:
        raise range_error(400, f"the range holds {length} bytes, Content-Length says"
                          f" {request.content_length}")
    return first, length


@bp.post("/uploads", responses=responses({201: UploadOut}, 413))
def create_upload(body: UploadCreateBody) -> tuple[Response, int, dict[str, str]]:
    """Start an upload of `size_bytes` bytes, to be sent in pieces with `PUT`.

    The size counts against the tenant's storage quota from now until the upload becomes
    a dataset, is deleted or expires (`WEIGHTSMITH_UPLOAD_EXPIRY_S`).
    """
    from store import uploads

    limits = services().settings.limits
    if body.size_bytes > limits.max_upload_bytes:
        raise validation_error("size_bytes", f"{body.size_bytes} bytes is over the limit of"
                               f" {limits.max_upload_bytes}", status=413)
    tenant = current_tenant()
    with transaction() as session:
        uploads.delete_expired(session)
        check_storage(session, tenant, body.size_bytes, limits)
        row = uploads.create(session, tenant, total_bytes=body.size_bytes,
                             filename=body.filename,
                             expires_at=utcnow() + timedelta(seconds=limits.upload_expiry_s))
        out = upload_json(row)
    return jsonify(out), 201, {"Location": f"/v1/uploads/{out['id']}"}


@bp.put("/uploads/<upload_id>", responses=responses({200: UploadOut}, 404, 409, 413, 416),
        openapi_extensions={"requestBody": {
            "required": True, "description": "the bytes `Content-Range` names",
            "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
            "parameters": [{"name": HEADER, "in": "header", "required": True,
                            "schema": {"type": "string", "example": "bytes 0-8388607/20000000"},
                            "description": "bytes <first>-<last>/<size>, inclusive"}]})
def put_upload(path: UploadPath) -> Response:
    """Send the bytes `Content-Range` names. A piece must start at or before the bytes
    received (`received_bytes`); bytes sent again must equal those received (so a piece whose
    answer was lost can be sent again); a gap, other bytes, or a body of another length than
    its range is refused and nothing of the piece is kept."""
    from store import uploads

    tenant = current_tenant()
    header = request.headers.get(HEADER)
    with transaction() as session:
        row = uploads.get(session, tenant, path.upload_id, for_update=True)
        if row is None:
            raise not_found("upload", path.upload_id)
        first, length = parse_content_range(header, int(row.total_bytes))
        try:
            uploads.append(session, row, first, length, request.stream)
        except Conflict as exc:
            raise range_error(409, str(exc), kind="conflict") from None
        except (uploads.BodyLength, InvalidValue) as exc:
            raise range_error(400, str(exc).removeprefix(f"{HEADER}: ")) from None
        out = upload_json(row)
    return jsonify(out)


@bp.get("/uploads/<upload_id>", responses=responses({200: UploadOut}, 404))
def get_upload(path: UploadPath) -> Response:
    """How much of the upload has arrived: resume by sending from `received_bytes`."""
    from store import uploads

    with read_session() as session:
        row = uploads.get(session, current_tenant(), path.upload_id)
        if row is None:
            raise not_found("upload", path.upload_id)
        return jsonify(upload_json(row))


@bp.delete("/uploads/<upload_id>", responses=responses({204: None}, 404))
def delete_upload(path: UploadPath) -> tuple[str, int]:
    """Abandon an upload: its bytes are deleted and no longer count against the quota."""
    from store import uploads

    with transaction() as session:
        if not uploads.delete(session, current_tenant(), path.upload_id):
            raise not_found("upload", path.upload_id)
    return "", 204
