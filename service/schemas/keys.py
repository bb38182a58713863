"""API keys as the tenant sees them: never the key itself, only its first characters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.schemas.common import ID_PATTERN


class KeyPath(BaseModel):
    key_id: str = Field(..., pattern=ID_PATTERN)


class KeyOut(BaseModel):
    id: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    created_at: datetime
    revoked_at: datetime | None = None


class KeyList(BaseModel):
    items: list[KeyOut]
