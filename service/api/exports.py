"""A checkpoint as an ONNX model (`export.onnx`): `GET /v1/checkpoints/{id}/model.onnx` and,
for a registered model version, `GET /v1/models/{name}/versions/{n}/model.onnx`.

The model takes raw rows and answers what predict answers: the stored standardization and
predict's output link are inside it. A layer without an ONNX form is a 422 naming it
(`export.errors.ExportError`, mapped in service/errors.py).
"""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from service.api.checkpoints import find_checkpoint, network_for
from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session
from service.schemas.checkpoints import CheckpointPath
from service.schemas.common import responses
from service.schemas.exports import OnnxQuery
from service.schemas.models import VersionPath

# ONNX has no registered media type; runtimes read the bytes whatever the label.
ONNX_MEDIA_TYPE = "application/octet-stream"

bp = APIBlueprint("exports", __name__, url_prefix="/v1", abp_security=[{"bearer": []}])


def onnx_download(checkpoint_id: str, opset: int, filename: str) -> Response:
    """The ONNX model of a checkpoint the caller may read, as a file download.

    Call it outside any open session (it reads the network through the model cache).
    """
    from export.onnx.model import export_onnx

    payload = export_onnx(network_for(checkpoint_id), opset)
    return Response(payload, mimetype=ONNX_MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
    })


ONNX_RESPONSES = responses({200: {
    "description": "the model as ONNX (float32, batch dimension `batch`; input `input`, "
                   "output `output`)",
    "content": {ONNX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
}}, 404)


@bp.get("/checkpoints/<checkpoint_id>/model.onnx", responses=ONNX_RESPONSES,
        tags=[Tag(name="checkpoints")])
def download_onnx(path: CheckpointPath, query: OnnxQuery) -> Response:
    """The checkpoint as an ONNX model: raw inputs in, predict's outputs out."""
    with read_session() as session:
        row = find_checkpoint(session, path.checkpoint_id)
    return onnx_download(row.id, query.opset, f"{row.id}.onnx")


@bp.get("/models/<name>/versions/<int:version>/model.onnx", responses=ONNX_RESPONSES,
        tags=[Tag(name="models")])
def download_version_onnx(path: VersionPath, query: OnnxQuery) -> Response:
    """A registered model version as ONNX: the model of the checkpoint behind it."""
    from store import registry

    with read_session() as session:
        version = registry.resolve(session, current_tenant(), path.name, version=path.version)
        if version is None:
            raise not_found("model version", f"{path.name} v{path.version}")
        checkpoint_id = version.checkpoint_id
    return onnx_download(checkpoint_id, query.opset, f"{path.name}-v{path.version}.onnx")
