"""Dataset upload and listing parameters and the dataset resource (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.datasets import FORMATS
from service.schemas.common import ID_PATTERN, PageQuery

# Names end up in logs, terminals, HTML and file names on a user's disk: a conservative
# alphabet refuses control characters, quotes, path separators and "..", whatever they aim at.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._()+\-]{0,99}$"
TARGET_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"


class DatasetUploadQuery(BaseModel):
    name: str | None = Field(None, pattern=NAME_PATTERN, description="display name")
    target: str | None = Field(
        None, pattern=TARGET_PATTERN,
        description="CSV: the target column (name or 0-based index); default the last column",
    )
    features_only: bool = Field(
        False, description="true: the file has no target (CSV: every column is a feature; "
        "NPZ and JSON: X only); rows with NaN or inf are kept. Such a dataset can be scored "
        "by a batch prediction; a job refuses it (422 naming `dataset`)")


class DatasetListQuery(PageQuery):
    builtin: bool = Field(
        False, description="true: list the builtin datasets (`builtin:<name>`, one page) "
        "instead of your uploads")


class DatasetPath(BaseModel):
    dataset_id: str = Field(..., pattern=ID_PATTERN)


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    n_rows: int
    x_shape: list[int]
    y_shape: list[int]
    kind: str
    classes: list[Any] | None = None
    sha256: str | None = None
    size_bytes: int
    builtin: bool = False
    created_at: str | None = None


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None = None


UPLOAD_BODY: dict[str, Any] = {
    "description": "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values())
    + "; raw (the format's Content-Type) or as multipart field `file` (its file suffix);"
    " or, as application/json, `{\"upload_id\": ...}` naming a finished upload made in"
    " pieces (`POST /v1/uploads`: schema FromUploadBody).",
    "required": True,
    "content": {
        **{media_type: {"schema": form.body_schema}
           for form in FORMATS.values() for media_type in form.media_types},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "name": {"type": "string"},
                    "target": {"type": "string"},
                    "features_only": {"type": "boolean"},
                },
            }
        },
    },
}


class FromUploadBody(BaseModel):
    """`POST /v1/datasets` with a file uploaded in pieces (`/v1/uploads`)."""

    model_config = {"extra": "forbid"}

    upload_id: str = Field(..., pattern=ID_PATTERN, description="the finished upload")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="display name; default"
                             " the upload's filename")
    target: str | None = Field(None, pattern=TARGET_PATTERN, description="CSV: the target "
                               "column, as for a direct upload")
    features_only: bool = Field(False, description="a dataset without a target, to score "
                                "with a batch prediction, as for a direct upload")
    format: str | None = Field(None, description="one of the formats; default from the "
                               "upload's filename suffix",
                               json_schema_extra={"enum": sorted(FORMATS)})
