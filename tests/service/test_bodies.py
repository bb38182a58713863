"""Bodies are limited by the bytes read, chunked or not (service/bodies.py, issue 19).

The Flask test client hands the body over as a server that de-chunks it would
(`wsgi.input_terminated`, no Content-Length): before StrictRequest, Werkzeug read exactly the
limit and stopped, so a 100 MB chunked CSV was stored as its first 64 MiB with a 201, and a
chunked JSON body over the limit was a misleading 400. The real-server version (gunicorn's
de-chunking, the ASGI front) is tests/reliability/test_bodies_served.py.
"""

from __future__ import annotations

import io
from typing import Any

from flask.testing import FlaskClient

from config.settings import Settings
from tests.service.helpers import assert_problem


def chunked(client: FlaskClient, path: str, body: bytes, content_type: str,
            auth: dict[str, str]) -> Any:
    return client.post(path, input_stream=io.BytesIO(body),
                       headers={**auth, "Content-Type": content_type,
                                "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def csv_of(size: int) -> bytes:
    row = b"1,2,3,0\n"
    return b"a,b,c,y\n" + row * (size // len(row) + 1)


def test_a_chunked_csv_over_the_limit_is_413_and_nothing_is_stored(
        client: FlaskClient, auth: dict[str, str], settings: Settings) -> None:
    body = csv_of(settings.limits.max_upload_bytes + 1)
    response = chunked(client, "/v1/datasets?name=big", body, "text/csv", auth)
    problem = assert_problem(response, 413)
    assert problem["errors"][0]["field"] == "body"
    assert client.get("/v1/datasets", headers=auth).get_json()["items"] == []


def test_a_chunked_json_body_over_the_limit_is_413_not_400(
        client: FlaskClient, auth: dict[str, str], settings: Settings) -> None:
    body = b"[" + b"0," * settings.limits.max_upload_bytes + b"0]"
    response = chunked(client, "/v1/jobs", body, "application/json", auth)
    assert assert_problem(response, 413)["errors"][0]["field"] == "body"
    assert client.get("/v1/jobs", headers=auth).get_json()["items"] == []


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(
        client: FlaskClient, auth: dict[str, str], settings: Settings) -> None:
    """One byte under or at the limit is fine: the extra byte read only proves excess."""
    header, row = b"a,b,c,y\n", b"1,2,3,0\n"
    rows = (settings.limits.max_upload_bytes - len(header)) // len(row)
    body = header + row * rows
    body += b"\n" * (settings.limits.max_upload_bytes - len(body))
    assert len(body) == settings.limits.max_upload_bytes
    response = chunked(client, "/v1/datasets?name=edge", body, "text/csv", auth)
    # Over the test's row limit (5,000): refused by the parser, which read the whole body.
    assert_problem(response, 422)
    small = header + row * 10
    response = chunked(client, "/v1/datasets?name=small", small, "text/csv", auth)
    assert response.status_code == 201, response.data
    assert response.get_json()["n_rows"] == 10


def test_a_multipart_upload_over_the_limit_when_chunked_is_413(
        client: FlaskClient, auth: dict[str, str], settings: Settings) -> None:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()
    body += csv_of(settings.limits.max_upload_bytes) + f"\r\n--{boundary}--\r\n".encode()
    response = chunked(client, "/v1/datasets", body,
                       f"multipart/form-data; boundary={boundary}", auth)
    assert assert_problem(response, 413)["errors"][0]["field"] == "body"
    assert client.get("/v1/datasets", headers=auth).get_json()["items"] == []


def test_the_fronts_refusals_are_problem_documents(client: FlaskClient) -> None:
    """The ASGI front marks a refused body in the environ; the app answers before auth."""
    from service.front import REFUSAL_KEY

    for status, detail in ((413, "too large"), (408, "too slow")):
        response = client.post("/v1/jobs", data=b"",
                               environ_overrides={REFUSAL_KEY: (status, detail)})
        problem = assert_problem(response, status)
        assert problem["errors"] == [{"field": "body", "message": detail}]
