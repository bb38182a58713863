"""Webhooks: the endpoint a tenant registers and what its deliveries did."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import ID_PATTERN
from worker.webhooks import EVENT_TYPES


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "url": "https://example.com/hooks/weightsmith",
        "events": ["job.succeeded", "job.failed"], "description": "CI notifications"}})

    url: str = Field(..., min_length=1, max_length=2000,
                     description="http(s) URL; non-public addresses only where allowed")
    events: list[str] = Field(..., min_length=1, max_length=len(EVENT_TYPES),
                              description=f"any of {sorted(EVENT_TYPES)}")
    description: str | None = Field(None, max_length=500)


class WebhookPath(BaseModel):
    webhook_id: str = Field(..., pattern=ID_PATTERN)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: str
    secret: str | None = Field(None, description="only in the answer that created it")


class WebhookPage(BaseModel):
    items: list[WebhookOut]
    next_cursor: str | None = None


class PingOut(BaseModel):
    delivery_id: str
    event_id: str


class DeliveryAttempt(BaseModel):
    delivery_id: str
    event_id: str
    event_type: str
    state: str = Field(..., description="pending, delivered or failed")
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: float
    started_at: str


class DeliveryPage(BaseModel):
    items: list[DeliveryAttempt]
    next_cursor: str | None = None
