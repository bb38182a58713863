"""service/errors.py maps exceptions to problem+json by their class (registered once), never
by their name: a subclass inherits its base's document, a namesake elsewhere is a 500."""

from __future__ import annotations

import pytest
from flask import Flask

from core.errors import DatasetError, SpecError
from service import errors
from store.errors import Conflict, InvalidValue, NotFound, QuotaExceeded


class JobGone(NotFound):
    """A subclass the mapping has never heard of."""


class NotFound2(Exception):
    pass


NotFound2.__name__ = "NotFound"  # a namesake: the old name-based mapping made it a 404
NotFound2.__module__ = "store.elsewhere"


def answer(exc: Exception) -> tuple[int, dict[str, object]]:
    app = Flask(__name__)
    errors.init_app(app)

    @app.get("/boom")
    def boom() -> str:
        raise exc

    response = app.test_client().get("/boom")
    assert response.mimetype == errors.PROBLEM_JSON
    return response.status_code, response.get_json()


@pytest.mark.parametrize(("exc", "status", "kind"), [
    (JobGone("job 'x' not found"), 404, "not-found"),
    (Conflict("job x already finished (succeeded)"), 409, "conflict"),
    (QuotaExceeded(3, 3), 429, "quota-exceeded"),
    (DatasetError("row 2: not a number", "file"), 422, "invalid-dataset"),
    (SpecError.many([SpecError("a", "bad"), SpecError("b", "worse")]), 422, "invalid-spec"),
    (NotFound2("looks like one"), 500, "internal-error"),
])
def test_each_class_has_its_problem(exc: Exception, status: int, kind: str) -> None:
    got, body = answer(exc)
    assert (got, body["type"]) == (status, errors.TYPE_PREFIX + kind)


def test_documents_name_the_fields() -> None:
    _, body = answer(SpecError.many([SpecError("a", "bad"), SpecError("", "worse")]))
    assert body["errors"] == [{"field": "a", "message": "bad"},
                              {"field": "spec", "message": "worse"}]
    _, body = answer(InvalidValue("epochs", "the job would exceed 10 epochs"))
    assert body["errors"] == [{"field": "epochs", "message": "the job would exceed 10 epochs"}]
    _, body = answer(QuotaExceeded(2, 2))
    assert body["detail"] == "2 jobs are queued or running; the limit is 2 concurrent jobs " \
                             "per tenant"
