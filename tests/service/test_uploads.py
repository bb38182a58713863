"""`/v1/uploads`: a dataset file sent in pieces, resumed after a broken connection, refused
piece by piece when `Content-Range` lies (a problem naming the header, nothing stored), and
counted against the storage quota until it becomes a dataset or expires (issue 18)."""

from __future__ import annotations

import hashlib
import io
import itertools
import socket
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.service.helpers import assert_problem, blobs, npz_bytes

MiB = 1024 * 1024


def start(client: FlaskClient, auth: dict[str, str], size: int,
          filename: str | None = "train.npz") -> dict[str, Any]:
    response = client.post("/v1/uploads", json={"size_bytes": size, "filename": filename},
                           headers=auth)
    assert response.status_code == 201, response.data
    body: dict[str, Any] = response.get_json()
    assert response.headers["Location"] == f"/v1/uploads/{body['id']}"
    return body


def put(client: FlaskClient, auth: dict[str, str], upload_id: str, data: bytes, first: int,
        total: int, content_range: str | None = None) -> Any:
    header = content_range or f"bytes {first}-{first + len(data) - 1}/{total}"
    return client.put(f"/v1/uploads/{upload_id}", data=data, headers={
        **auth, "Content-Range": header, "Content-Type": "application/octet-stream"})


def chunked_put(client: FlaskClient, auth: dict[str, str], upload_id: str, body: bytes,
                content_range: str) -> Any:
    """A piece sent chunked, without Content-Length (as tests/service/test_bodies.py)."""
    return client.put(f"/v1/uploads/{upload_id}", input_stream=io.BytesIO(body),
                      headers={**auth, "Content-Range": content_range,
                               "Transfer-Encoding": "chunked"},
                      environ_overrides={"wsgi.input_terminated": True})


def image_npz(rows: int = 3000) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, (rows, 1, 8, 8)).astype(np.uint8)
    y = rng.integers(0, 10, rows)
    return npz_bytes(X=X, y=y), X, y


def stored_parts(session_factory: Any) -> int:
    from store.models import UploadPart

    with session_factory() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(UploadPart)) or 0)


def test_pieces_in_any_order_of_resends_become_the_dataset(
        client: FlaskClient, auth: dict[str, str], session_factory: Any) -> None:
    data, X, y = image_npz()
    total = len(data)
    upload = start(client, auth, total)
    assert upload["received_bytes"] == 0 and upload["complete"] is False
    cuts = [0, 7777, 50_000, total]
    for a, b in itertools.pairwise(cuts):
        response = put(client, auth, upload["id"], data[a:b], a, total)
        assert response.status_code == 200, response.data
        assert response.get_json()["received_bytes"] == b
        again = put(client, auth, upload["id"], data[a:b], a, total)  # its answer was lost
        assert again.status_code == 200 and again.get_json()["received_bytes"] == b
    got = client.get(f"/v1/uploads/{upload['id']}", headers=auth).get_json()
    assert got["received_bytes"] == total and got["complete"] is True
    made = client.post("/v1/datasets", json={"upload_id": upload["id"], "name": "digits"},
                       headers=auth)
    assert made.status_code == 201, made.data
    body = made.get_json()
    assert body["name"] == "digits" and body["format"] == "npz"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["x_shape"] == [3000, 1, 8, 8]
    assert_problem(client.get(f"/v1/uploads/{upload['id']}", headers=auth), 404)  # consumed
    assert stored_parts(session_factory) == 0
    from service.api.data import stored_arrays

    with session_factory() as s:
        arrays = stored_arrays(s, *_tenant_and(session_factory, body["id"]))
    assert arrays is not None
    assert arrays[0].dtype == X.dtype or np.array_equal(arrays[0], X)
    assert np.array_equal(arrays[0], X) and np.array_equal(arrays[1], y)
    # the same bytes again, as a plain upload: the stored dataset comes back
    same = client.post("/v1/datasets", data=data,
                       headers={**auth, "Content-Type": "application/x-npz"})
    assert same.status_code == 200 and same.get_json()["id"] == body["id"]


def _tenant_and(session_factory: Any, dataset_id: str) -> tuple[str, str]:
    from store.models import Dataset

    with session_factory() as s:
        row = s.get(Dataset, dataset_id)
        assert row is not None
        return row.tenant_id, dataset_id


@pytest.mark.parametrize("header, status", [
    (None, 400),
    ("", 400),
    ("bytes 0-9", 400),
    ("bytes=0-9/100", 400),
    ("bytes */100", 400),
    ("bytes -1-9/100", 400),
    ("bytes +0-9/100", 400),
    ("bytes 0x0-9/100", 400),
    ("bytes 0-9/100 ", 400),
    ("bytes  0-9/100", 400),
    ("bytes 0-9/1_00", 400),
    ("bytes \u0660-9/100", 400),  # an Arabic-Indic zero: int() would take it
    ("bytes 0-9/99999999999999999999999", 400),
    ("bytes 9-0/100", 400),
    ("bytes 0-9/101", 400),  # not the upload's size
    ("bytes 0-100/100", 416),  # past the end
    ("bytes 0-99/100", 400),  # 100 bytes said, 10 sent
    ("bytes 5-14/100", 409),  # a gap: nothing has arrived yet
    ("BYTES 0-9/100", 400),
])
def test_hostile_content_range_is_refused_naming_the_header_and_nothing_is_stored(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        header: str | None, status: int) -> None:
    upload = start(client, auth, 100)
    headers = {**auth, "Content-Type": "application/octet-stream"}
    if header is not None:
        headers["Content-Range"] = header
    response = client.put(f"/v1/uploads/{upload['id']}", data=b"x" * 10, headers=headers)
    body = assert_problem(response, status)
    assert body["errors"][0]["field"] == "Content-Range"
    assert client.get(f"/v1/uploads/{upload['id']}", headers=auth).get_json()[
        "received_bytes"] == 0
    assert stored_parts(session_factory) == 0


def test_a_resent_piece_with_other_bytes_a_short_body_and_a_long_one_are_refused(
        client: FlaskClient, auth: dict[str, str], session_factory: Any) -> None:
    data = bytes(range(256)) * 100
    upload = start(client, auth, len(data))
    assert put(client, auth, upload["id"], data[:9000], 0, len(data)).status_code == 200
    other = bytearray(data[8000:12000])
    other[100] ^= 0xFF
    refused = assert_problem(put(client, auth, upload["id"], bytes(other), 8000, len(data)),
                             409)
    assert refused["errors"][0]["field"] == "Content-Range" and "differ" in refused["detail"]
    # a body longer or shorter than its range, chunked: only the count can tell
    for body in (data[9000:9101], data[9000:9099]):
        wrong = chunked_put(client, auth, upload["id"], body, f"bytes 9000-9099/{len(data)}")
        problem = assert_problem(wrong, 400)
        assert problem["errors"][0]["field"] == "Content-Range"
        assert "longer" in problem["detail"] or "short" in problem["detail"]
    got = client.get(f"/v1/uploads/{upload['id']}", headers=auth).get_json()
    assert got["received_bytes"] == 9000
    assert put(client, auth, upload["id"], data[9000:], 9000, len(data)).status_code == 200


def test_uploads_count_against_the_quota_expire_and_are_per_tenant(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        session_factory: Any, settings: Any) -> None:
    quota = settings.limits.max_stored_bytes
    big = start(client, auth, settings.limits.max_upload_bytes)
    response = client.post("/v1/uploads", json={"size_bytes": settings.limits.max_upload_bytes
                                                + 1}, headers=auth)
    assert assert_problem(response, 413)["errors"][0]["field"] == "size_bytes"
    for _ in range(quota // settings.limits.max_upload_bytes - 1):
        start(client, auth, settings.limits.max_upload_bytes)
    assert_problem(client.post("/v1/uploads", json={"size_bytes": 1}, headers=auth), 413)
    assert_problem(client.get(f"/v1/uploads/{big['id']}", headers=other_auth), 404)
    assert_problem(put(client, other_auth, big["id"], b"x", 0, big["size_bytes"]), 404)
    assert client.delete(f"/v1/uploads/{big['id']}", headers=auth).status_code == 204
    start(client, auth, 1)  # deleting one freed its room
    from store.models import Upload

    with session_factory.begin() as s:  # every upload expires
        s.execute(sa.update(Upload).values(expires_at=Upload.created_at))
    assert_problem(client.get(f"/v1/uploads/{big['id']}", headers=auth), 404)
    start(client, auth, settings.limits.max_upload_bytes)  # expired ones count no more
    with session_factory() as s:  # and starting an upload swept them away
        assert s.scalar(sa.select(sa.func.count()).select_from(Upload)) == 1


def test_a_dataset_from_an_unfinished_or_unknown_upload_is_refused(
        client: FlaskClient, auth: dict[str, str]) -> None:
    upload = start(client, auth, 100, filename="a.csv")
    assert put(client, auth, upload["id"], b"f0,label\n", 0, 100).status_code == 200
    unfinished = client.post("/v1/datasets", json={"upload_id": upload["id"]}, headers=auth)
    assert assert_problem(unfinished, 409)["errors"][0]["field"] == "upload_id"
    unknown = client.post("/v1/datasets", json={"upload_id": "up_nope"}, headers=auth)
    assert assert_problem(unknown, 422)["errors"][0]["field"] == "upload_id"
    extra = client.post("/v1/datasets", json={"upload_id": upload["id"], "X": [1]},
                        headers=auth)
    assert_problem(extra, 422)
    nameless = start(client, auth, 4, filename=None)
    assert put(client, auth, nameless["id"], b"1234", 0, 4).status_code == 200
    no_format = client.post("/v1/datasets", json={"upload_id": nameless["id"]}, headers=auth)
    assert assert_problem(no_format, 422)["errors"][0]["field"] == "format"


def test_a_connection_killed_half_way_keeps_nothing_of_its_piece_and_the_upload_resumes(
        live_url: str, api_key: str, session_factory: Any) -> None:
    from service.client import WeightsmithClient

    X, y = blobs(5000, 40, 3)
    data = npz_bytes(X=X.astype(np.float32), y=y)  # about 0.8 MB, in pieces of 256 KiB
    assert len(data) > 600_000
    piece = 256 * 1024
    with WeightsmithClient(live_url, api_key) as client:
        upload = client.start_upload(len(data), "big.npz")
        assert client.send_piece(upload["id"], data[:piece], 0, len(data))[
            "received_bytes"] == piece
        # the second piece: its head sent, then the connection dies
        address = urlparse(live_url)
        with socket.create_connection((address.hostname, address.port)) as raw:
            raw.sendall((f"PUT /v1/uploads/{upload['id']} HTTP/1.1\r\n"
                         f"Host: {address.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
                         f"Content-Range: bytes {piece}-{2 * piece - 1}/{len(data)}\r\n"
                         f"Content-Length: {piece}\r\n\r\n").encode()
                        + data[piece:piece + piece // 2])
        # Nothing of the broken piece is visible: it was never committed (its request
        # fails reading the body's end and rolls back; a resent piece waits for that).
        assert client.get_upload(upload["id"])["received_bytes"] == piece
        body = client.upload_dataset(data, filename="big.npz", piece_bytes=piece,
                                     resume=upload["id"])
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["x_shape"] == [5000, 40]


def test_the_cli_sends_a_large_file_in_pieces_with_a_progress_bar(
        live_url: str, api_key: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from service import client as client_module
    from service.cli import main

    monkeypatch.setenv("WEIGHTSMITH_URL", live_url)
    monkeypatch.setenv("WEIGHTSMITH_API_KEY", api_key)
    monkeypatch.setattr(client_module, "PIECES_FROM", 100_000)
    monkeypatch.setattr(client_module, "PIECE_BYTES", 128 * 1024)
    sent: list[tuple[int, int]] = []
    send_piece = client_module.WeightsmithClient.send_piece

    def counting(self: Any, upload_id: str, data: bytes, first: int, total: int) -> Any:
        sent.append((first, len(data)))
        return send_piece(self, upload_id, data, first, total)

    monkeypatch.setattr(client_module.WeightsmithClient, "send_piece", counting)
    X, y = blobs(5000, 40, 3, seed=3)
    data = npz_bytes(X=X.astype(np.float32), y=y)
    path = tmp_path / "big.npz"
    path.write_bytes(data)
    assert main(["datasets", "upload", str(path), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["name"] == "big.npz"
    assert [first for first, _ in sent] == list(range(0, len(data), 128 * 1024))
    assert sum(length for _, length in sent) == len(data)


def test_a_piece_over_the_body_limit_is_413_by_the_bytes_read_and_nothing_is_kept(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Any) -> None:
    limit = settings.limits.max_upload_bytes
    upload = start(client, auth, limit)
    # chunked (no Content-Length): only counting the bytes read can refuse it
    response = chunked_put(client, auth, upload["id"], b"x" * (limit + 4096),
                           f"bytes 0-{limit - 1}/{limit}")
    assert assert_problem(response, 413)["errors"][0]["field"] == "body"
    assert client.get(f"/v1/uploads/{upload['id']}", headers=auth).get_json()[
        "received_bytes"] == 0
    assert stored_parts(session_factory) == 0
