"""`GET /v1/checkpoints/{id}/model.onnx`: a checkpoint as an ONNX model (`export.onnx`).

The model takes raw rows and answers what predict answers: the stored standardization and
predict's output link are inside it. A layer without an ONNX form is a 422 naming it
(`export.errors.ExportError`, mapped in service/errors.py).
"""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from service.api.checkpoints import find_checkpoint, network_for
from service.app import read_session
from service.schemas.checkpoints import CheckpointPath
from service.schemas.common import responses
from service.schemas.exports import OnnxQuery

# ONNX has no registered media type; runtimes read the bytes whatever the label.
ONNX_MEDIA_TYPE = "application/octet-stream"

bp = APIBlueprint(
    "exports", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="checkpoints")], abp_security=[{"bearer": []}],
)


def onnx_download(checkpoint_id: str, opset: int, filename: str) -> Response:
    """The ONNX model of a checkpoint the caller may read, as a file download.

    Call it outside any open session (it reads the network through the model cache).
    """
    from export.onnx.model import export_onnx

    payload = export_onnx(network_for(checkpoint_id), opset)
    return Response(payload, mimetype=ONNX_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
    })


@bp.get(
    "/checkpoints/<checkpoint_id>/model.onnx",
    responses=responses({200: {"description": "the model as ONNX (float32, batch dimension "
                                              "`batch`; input `input`, output `output`)",
                               "content": {ONNX_MEDIA_TYPE: {"schema": {
                                   "type": "string", "format": "binary"}}}}}, 404),
)
def download_onnx(path: CheckpointPath, query: OnnxQuery) -> Response:
    """The checkpoint as an ONNX model: raw inputs in, predict's outputs out."""
    with read_session() as session:
        row = find_checkpoint(session, path.checkpoint_id)
    return onnx_download(row.id, query.opset, f"{row.id}.onnx")
