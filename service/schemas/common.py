"""Models shared by every resource: the problem document, pages, and OpenAPI response tables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_REF = "#/components/schemas/Problem"
ID_PATTERN = r"^[A-Za-z0-9_:\-]{1,64}$"
# Sequence numbers and epochs are 32-bit integers in the database; a bigger one is a 422 here,
# not an overflow in the driver.
MAX_INT32 = 2**31 - 1


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is returned."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class PageQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500, description="page size")
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the last page")


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}},
    }


_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    404: "Not found (or another tenant's)",
    406: "Unacceptable Accept header",
    409: "Conflict with the resource's state",
    413: "Payload or batch over the limits",
    415: "Unsupported Content-Type",
    416: "The range is past the end of the resource",
    422: "Validation failed; `errors` names each field",
    429: "Rate limit or quota exceeded; see Retry-After",
    503: "The database is unreachable or restarting; retry after Retry-After",
}


def responses(
    ok: dict[int, type[BaseModel] | dict[str, Any] | None], *extra_errors: int
) -> Any:
    """The OpenAPI `responses` of one operation: its successes plus its problem documents."""
    out: dict[str, Any] = {str(status): model for status, model in ok.items()}
    for status in sorted({400, 401, 422, 429, 503, *extra_errors}):
        out[str(status)] = problem_response(_ERROR_TEXT[status])
    return out
