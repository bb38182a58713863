"""RFC 9457 problem documents: the one place where failures become HTTP responses.

Every error the service returns, whether raised by a view (`ApiError`), by the core (spec,
dataset, checkpoint errors), by the store (not found, conflict, quota), by Werkzeug (404, 405,
413, ...), by flask-openapi3's request validation, or by a bug (500), leaves through here as
`application/problem+json` with `type, title, status, detail` and, for validation, `errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from core.errors import (
    CheckpointError,
    DatasetError,
    SpecError,
    SpecErrors,
    WeightsmithError,
)
from export.errors import ExportError
from store.errors import BadCursor, Conflict, InvalidValue, NotFound, QuotaExceeded

log = logging.getLogger(__name__)
RETRY_AFTER_DATABASE_S = 1
RETRY_AFTER_QUOTA_S = 30  # a job usually ends within that; the client may submit again

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:weightsmith:problem:"


class ApiError(Exception):
    """An error a view raises on purpose; rendered as a problem document by `init_app`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = dict(headers or {})


def validation_error(field: str, message: str, status: int = 422) -> ApiError:
    """A 422 (or 400/413) naming the offending field, the shape every validator returns."""
    return ApiError(
        status,
        f"{field}: {message}",
        kind="validation-error",
        errors=[{"field": field, "message": message}],
    )


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Iterable[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build one problem+json response (`extra`: RFC 9457 extension members)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + kind if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e["field"], "message": e["message"]} for e in errors]
    body.update(extra or {})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _loc_to_field(loc: tuple[int | str, ...]) -> str:
    """pydantic's ("model", "layers", 2, "units") -> "model.layers[2].units"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def pydantic_errors(e: ValidationError) -> list[dict[str, str]]:
    return [{"field": _loc_to_field(err["loc"]), "message": err["msg"]} for err in e.errors()]


def validation_error_callback(e: ValidationError) -> Response:
    """flask-openapi3 calls this for a request that fails its pydantic models."""
    errors = pydantic_errors(e)
    detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:5])
    return problem(422, detail or "invalid request", kind="validation-error", errors=errors)


# Exception class -> its problem document. Flask picks the handler of the nearest class in
# the exception's MRO, so a subclass (SpecErrors, BadCursor) is mapped by its own entry or
# its base's; a class not here (or below one here) is a bug: 500.
PROBLEMS: dict[type[Exception], Callable[[Any], Response]] = {}
E = TypeVar("E", bound=Exception)


def problem_for(*classes: type[E]) -> Callable[[Callable[[E], Response]], Callable[[E], Response]]:
    """Register the decorated function as the problem document of these exception classes."""
    def register(render: Callable[[E], Response]) -> Callable[[E], Response]:
        for cls in classes:
            PROBLEMS[cls] = render
        return render
    return register


@problem_for(ApiError)
def _api_error(exc: ApiError) -> Response:
    return problem(exc.status, exc.detail, kind=exc.kind, errors=exc.errors,
                   headers=exc.headers)


@problem_for(ValidationError)
def _invalid_body(exc: ValidationError) -> Response:
    """A body a view validates with a pydantic model itself (an optional body)."""
    return validation_error_callback(exc)


@problem_for(SpecError)
def _invalid_spec(exc: SpecError) -> Response:
    errors = [e.to_dict() for e in (exc.errors if isinstance(exc, SpecErrors) else [exc])]
    for error in errors:
        error["field"] = error["field"] or "spec"
    detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors[:5])
    return problem(422, detail, kind="invalid-spec", errors=errors)


@problem_for(DatasetError)
def _invalid_dataset(exc: DatasetError) -> Response:
    return problem(422, str(exc), kind="invalid-dataset",
                   errors=[{"field": exc.field or "dataset", "message": exc.message}])


@problem_for(ExportError)
def _not_exportable(exc: ExportError) -> Response:
    """A network the exporter (export/) cannot write: a layer or activation without a form."""
    return problem(422, str(exc), kind="not-exportable",
                   errors=[{"field": exc.field or "model", "message": exc.message}])


@problem_for(CheckpointError)
def _invalid_checkpoint(exc: CheckpointError) -> Response:
    return problem(422, str(exc), kind="invalid-checkpoint",
                   errors=[{"field": "file", "message": str(exc)}])


@problem_for(WeightsmithError)
def _invalid_input(exc: WeightsmithError) -> Response:
    return problem(422, str(exc), kind="invalid-input")


@problem_for(InvalidValue)
def _invalid_value(exc: InvalidValue) -> Response:
    return problem(422, str(exc), kind="validation-error",
                   errors=[{"field": exc.field, "message": exc.message}])


@problem_for(BadCursor)
def _bad_cursor(exc: BadCursor) -> Response:
    return problem(400, str(exc), kind="invalid-cursor",
                   errors=[{"field": "cursor", "message": "not a cursor of this listing"}])


@problem_for(NotFound)
def _not_found(exc: NotFound) -> Response:
    return problem(404, str(exc) or "not found", kind="not-found")


@problem_for(QuotaExceeded)
def _quota_exceeded(exc: QuotaExceeded) -> Response:
    return problem(429, str(exc), kind="quota-exceeded",
                   headers={"Retry-After": str(RETRY_AFTER_QUOTA_S)})


@problem_for(Conflict)
def _conflict(exc: Conflict) -> Response:
    return problem(409, str(exc) or "conflict", kind="conflict")


def init_app(app: Flask) -> None:
    """Register every problem document: the classes above, HTTP errors, and the rest (500)."""
    for cls, render in PROBLEMS.items():
        app.register_error_handler(cls, render)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        # flask-openapi3 aborts with a ready response (already a problem document): keep it.
        if exc.response is not None and exc.response.mimetype == PROBLEM_JSON:
            return exc.response
        headers: dict[str, str] = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
        detail = exc.description or HTTPStatus(status).phrase
        return problem(status, detail, kind=None, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if _database_unreachable(exc):
            log.warning("database unreachable: %s", exc)
            return problem(503, "the database is unreachable or restarting; retry shortly",
                           kind="database-unavailable",
                           headers={"Retry-After": str(RETRY_AFTER_DATABASE_S)})
        log.exception("unhandled error")
        return problem(500, "internal server error", kind="internal-error")


def _database_unreachable(exc: Exception) -> bool:
    """A dropped connection (SQLAlchemy has invalidated it and its older siblings) or a
    database that refuses connections: transient, so a 503 the client may retry, not a 500."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError)
    )
