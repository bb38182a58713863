"""Uploads in pieces (`/v1/uploads`): the body that starts one and the upload resource."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.schemas.common import ID_PATTERN
from service.schemas.datasets import NAME_PATTERN


class UploadCreateBody(BaseModel):
    model_config = {"extra": "forbid"}

    size_bytes: int = Field(..., ge=1, description="the whole file's size: every piece's "
                            "Content-Range names it as the total")
    filename: str | None = Field(None, pattern=NAME_PATTERN, description="tells the format "
                                 "by its suffix and names the dataset by default")


class UploadPath(BaseModel):
    upload_id: str = Field(..., pattern=ID_PATTERN)


class UploadOut(BaseModel):
    id: str
    filename: str | None = None
    size_bytes: int
    received_bytes: int = Field(..., description="the offset to send from: bytes "
                                "0..received_bytes-1 have arrived")
    complete: bool
    created_at: str
    expires_at: str
