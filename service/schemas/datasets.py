"""Dataset upload and listing parameters and the dataset resource (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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
    "description": "CSV (header row; `target` column, default last), NPZ (`X`, `y`; never "
    "unpickled) or JSON `{\"X\": [[...]], \"y\": [...]}`; raw or as multipart field `file`.",
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["X", "y"],
                "properties": {"X": {"type": "array"}, "y": {"type": "array"}},
            }
        },
        "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "name": {"type": "string"},
                    "target": {"type": "string"},
                },
            }
        },
    },
}
