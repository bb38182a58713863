"""`/v1/datasets`: uploads in every format, pages, reads, deletes, isolation, hostile inputs."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.service.helpers import (
    assert_problem,
    blobs,
    csv_bytes,
    json_bytes,
    mlp_spec,
    npz_bytes,
    upload_csv,
)


def listed(client: FlaskClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/v1/datasets", headers=auth).get_json()["items"]
    return items


def test_upload_csv_raw_body(client: FlaskClient, auth: dict[str, str]) -> None:
    X, y = blobs(60, 4, 3)
    raw = csv_bytes(X, y)
    response = client.post("/v1/datasets?name=blobs&target=label", data=raw,
                           headers={**auth, "Content-Type": "text/csv"})
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/datasets/{body['id']}"
    assert body["name"] == "blobs" and body["format"] == "csv"
    assert body["n_rows"] == 60 and body["x_shape"] == [60, 4] and body["y_shape"] == [60]
    assert body["kind"] == "classification" and body["classes"] == [0, 1, 2]
    assert body["sha256"] == hashlib.sha256(raw).hexdigest()
    assert client.get(f"/v1/datasets/{body['id']}", headers=auth).get_json() == body


def test_upload_npz_json_and_multipart(client: FlaskClient, auth: dict[str, str]) -> None:
    X, y = blobs(30, 5, 2)
    npz = client.post("/v1/datasets?name=n", data=npz_bytes(X=X, y=y),
                      headers={**auth, "Content-Type": "application/x-npz"})
    assert npz.status_code == 201, npz.data
    assert npz.get_json()["x_shape"] == [30, 5] and npz.get_json()["format"] == "npz"
    js = client.post("/v1/datasets?name=j", data=json_bytes(X, y),
                     headers={**auth, "Content-Type": "application/json"})
    assert js.status_code == 201, js.data
    assert js.get_json()["classes"] == [0, 1]
    multi = client.post("/v1/datasets", headers=auth, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(csv_bytes(X, y)), "train.csv"),
                              "target": "label"})
    assert multi.status_code == 201, multi.data
    assert multi.get_json()["name"] == "train.csv" and multi.get_json()["x_shape"] == [30, 5]


def test_list_pages_with_a_cursor_newest_first(client: FlaskClient, auth: dict[str, str]) -> None:
    ids = [upload_csv(client, auth, n=10, name=f"d{i}", seed=i)["id"] for i in range(5)]
    first = client.get("/v1/datasets?limit=2", headers=auth).get_json()
    assert [d["id"] for d in first["items"]] == ids[::-1][:2]
    second = client.get(f"/v1/datasets?limit=2&cursor={first['next_cursor']}",
                        headers=auth).get_json()
    third = client.get(f"/v1/datasets?limit=2&cursor={second['next_cursor']}",
                       headers=auth).get_json()
    assert [d["id"] for d in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    assert_problem(client.get("/v1/datasets?cursor=garbage", headers=auth), 400)


def test_delete_then_404(client: FlaskClient, auth: dict[str, str]) -> None:
    ident = upload_csv(client, auth)["id"]
    assert client.delete(f"/v1/datasets/{ident}", headers=auth).status_code == 204
    assert_problem(client.get(f"/v1/datasets/{ident}", headers=auth), 404)
    assert_problem(client.delete(f"/v1/datasets/{ident}", headers=auth), 404)


def test_builtin_datasets_are_readable_not_deletable(client: FlaskClient,
                                                      auth: dict[str, str]) -> None:
    digits = client.get("/v1/datasets/builtin:digits", headers=auth).get_json()
    assert digits["builtin"] is True and digits["x_shape"][1:] in ([64], [8, 8], [1, 8, 8])
    assert digits["classes"] == list(range(10))
    assert_problem(client.get("/v1/datasets/builtin:nope", headers=auth), 404)
    assert_problem(client.delete("/v1/datasets/builtin:digits", headers=auth), 409)


def test_builtin_datasets_are_listed_with_a_flag(client: FlaskClient,
                                                 auth: dict[str, str]) -> None:
    from core.datasets import BUILTINS

    mine = upload_csv(client, auth)["id"]
    page = client.get("/v1/datasets?builtin=true", headers=auth).get_json()
    assert [d["id"] for d in page["items"]] == [f"builtin:{n}" for n in sorted(BUILTINS)]
    assert page["next_cursor"] is None
    digits = next(d for d in page["items"] if d["id"] == "builtin:digits")
    assert digits == client.get("/v1/datasets/builtin:digits", headers=auth).get_json()
    assert (digits["n_rows"], digits["x_shape"], digits["builtin"]) == (1797, [1797, 64], True)
    assert [d["id"] for d in listed(client, auth)] == [mine]  # the default: uploads only
    assert [d["id"] for d in client.get("/v1/datasets?builtin=false",
                                        headers=auth).get_json()["items"]] == [mine]


def test_another_tenants_dataset_is_404(client: FlaskClient, auth: dict[str, str],
                                        other_auth: dict[str, str]) -> None:
    ident = upload_csv(client, auth)["id"]
    assert_problem(client.get(f"/v1/datasets/{ident}", headers=other_auth), 404)
    assert_problem(client.delete(f"/v1/datasets/{ident}", headers=other_auth), 404)
    assert listed(client, other_auth) == []
    assert [d["id"] for d in listed(client, auth)] == [ident]


def _zip_bomb() -> bytes:
    return npz_bytes(X=np.zeros((3000, 3000)), y=np.zeros(3000))  # 72 MB inflated, ~100 KB


def _pickled() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1.0]]), y=np.array([{"evil": 1}], dtype=object))
    return buffer.getvalue()


X4, Y4 = blobs(20, 4, 2)
HOSTILE: dict[str, tuple[str, str, bytes, int]] = {
    # case: (query string, content type, body, expected status)
    "oversized": ("", "text/csv", b"a,b\n" + b"1,2\n" * 600_000, 413),
    "zip bomb": ("", "application/x-npz", _zip_bomb(), 413),
    "pickled npz": ("", "application/x-npz", _pickled(), 422),
    "not a zip": ("", "application/x-npz", b"PK\x03\x04 nonsense", 422),
    "NaN in CSV": ("", "text/csv", b"a,b,label\n1,nan,0\n2,3,1\n", 422),
    "inf in JSON": ("", "application/json", b'{"X": [[1, 1e999]], "y": [0]}', 422),
    "ragged JSON": ("", "application/json", b'{"X": [[1, 2], [3]], "y": [0, 1]}', 422),
    "X and y disagree": ("", "application/x-npz", npz_bytes(X=X4, y=Y4[:5]), 422),
    "too many rows": ("", "application/x-npz", npz_bytes(X=np.zeros((6000, 2)),
                                                         y=np.zeros(6000)), 422),
    "too many features": ("", "application/x-npz", npz_bytes(X=np.zeros((5, 400)),
                                                             y=np.zeros(5)), 422),
    "non-UTF-8 CSV": ("", "text/csv", "a,b,label\n1,2,caf\u00e9\n".encode("latin-1"), 422),
    "unknown target": ("?target=nope", "text/csv", csv_bytes(X4, Y4), 422),
    "SQL in name": ("?name=x'%3B%20DROP%20TABLE%20datasets%3B--", "text/csv",
                    csv_bytes(X4, Y4), 422),
    "path traversal name": ("?name=..%2F..%2Fetc%2Fpasswd", "text/csv", csv_bytes(X4, Y4), 422),
    "control characters in name": ("?name=a%1b%5B31mred", "text/csv", csv_bytes(X4, Y4), 422),
    "empty body": ("", "text/csv", b"", 422),
    "bare CR in CSV (found by the fuzzer)": ("", "text/csv", b"a\nb\rc\xc2\x85d\r\ni", 422),
    "unsupported type": ("", "image/png", b"\x89PNG", 415),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_upload_is_refused_and_nothing_is_stored(
    client: FlaskClient, auth: dict[str, str], case: str
) -> None:
    query, content_type, payload, status = HOSTILE[case]
    response = client.post(f"/v1/datasets{query}", data=payload,
                           headers={**auth, "Content-Type": content_type})
    assert_problem(response, status)
    assert listed(client, auth) == []
    assert client.get("/healthz").status_code == 200


def test_hostile_multipart_filename_does_not_become_a_name(client: FlaskClient,
                                                           auth: dict[str, str]) -> None:
    response = client.post(
        "/v1/datasets?target=label", headers=auth, content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_bytes(X4, Y4)), "../../etc/passwd.csv")},
    )
    assert response.status_code == 201, response.data
    assert response.get_json()["name"] == "passwd.csv"
    bad = client.post(
        "/v1/datasets", headers=auth, content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_bytes(X4, Y4)), "x.csv"), "name": "a\x00b"},
    )
    assert_problem(bad, 422)


def test_storage_quota_is_413_and_stores_nothing(settings: Any, migrated: None,
                                                 api_key: str) -> None:
    from config.settings import Limits
    from service.app import create_app

    small = settings.with_overrides(limits=Limits(**{**settings.limits.__dict__,
                                                     "max_stored_bytes": 4000}))
    client = create_app(small, testing=True).test_client()
    auth = {"Authorization": f"Bearer {api_key}"}
    X, y = blobs(20, 4, 2)
    first = client.post("/v1/datasets?target=label", data=csv_bytes(X, y),
                        headers={**auth, "Content-Type": "text/csv"})
    assert first.status_code == 201, first.data
    X, y = blobs(300, 4, 2)
    response = client.post("/v1/datasets?target=label", data=csv_bytes(X, y),
                           headers={**auth, "Content-Type": "text/csv"})
    body = assert_problem(response, 413)
    assert body["type"].endswith("storage-quota-exceeded")
    assert len(listed(client, auth)) == 1


def stored_bytes(session_factory: Any, auth: dict[str, str]) -> int:
    from store import keys, usage

    with session_factory() as s:
        tenant = keys.tenant_for_key(s, auth["Authorization"].split()[1])
        assert tenant is not None
        return usage.stored_bytes(s, tenant)


def test_uploading_the_same_bytes_again_returns_the_stored_dataset(
    client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
    session_factory: Any,
) -> None:
    X, y = blobs(40, 3, 2)
    raw = csv_bytes(X, y)
    post = lambda query, headers: client.post(  # noqa: E731
        f"/v1/datasets{query}", data=raw, headers={**headers, "Content-Type": "text/csv"})
    first = post("?name=train&target=label", auth)
    assert first.status_code == 201, first.data
    stored = stored_bytes(session_factory, auth)
    again = post("?name=other-name", auth)  # the last column is the target by default
    assert again.status_code == 200, again.data
    assert again.get_json() == first.get_json()  # same id; its name stays "train"
    assert again.headers["Location"] == f"/v1/datasets/{first.get_json()['id']}"
    assert stored_bytes(session_factory, auth) == stored  # nothing more stored or billed
    assert [d["id"] for d in listed(client, auth)] == [first.get_json()["id"]]
    # The same bytes read another way are another dataset: here f0 is the target.
    regression = post("?target=f0", auth)
    assert regression.status_code == 201 and regression.get_json()["x_shape"] == [40, 3]
    assert regression.get_json()["sha256"] == first.get_json()["sha256"]
    # Another tenant's identical upload is its own.
    theirs = post("", other_auth)
    assert theirs.status_code == 201 and theirs.get_json()["id"] != first.get_json()["id"]


def test_a_repeated_upload_is_answered_even_at_a_full_storage_quota(
    settings: Any, migrated: None, api_key: str
) -> None:
    from config.settings import Limits
    from service.app import create_app

    small = settings.with_overrides(limits=Limits(**{**settings.limits.__dict__,
                                                     "max_stored_bytes": 1500}))
    client = create_app(small, testing=True).test_client()
    auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "text/csv"}
    X, y = blobs(20, 4, 2)
    first = client.post("/v1/datasets", data=csv_bytes(X, y), headers=auth)
    assert first.status_code == 201, first.data
    X2, y2 = blobs(20, 4, 2, seed=1)
    assert_problem(client.post("/v1/datasets", data=csv_bytes(X2, y2), headers=auth), 413)
    again = client.post("/v1/datasets", data=csv_bytes(X, y), headers=auth)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]


def test_the_upload_body_and_its_415_come_from_the_format_registry(
    client: FlaskClient, auth: dict[str, str],
) -> None:
    from core.datasets import FORMATS

    body = client.get("/openapi.json").get_json()["paths"]["/v1/datasets"]["post"]["requestBody"]
    media_types = [m for f in FORMATS.values() for m in f.media_types]
    assert sorted(body["content"]) == sorted([*media_types, "multipart/form-data"])
    assert all(f.summary in body["description"] for f in FORMATS.values())
    refused = client.post("/v1/datasets", data=b"x", content_type="text/plain", headers=auth)
    assert refused.status_code == 415
    assert "send text/csv, application/x-npz, application/json or multipart/form-data" in \
        refused.get_json()["detail"]
    unknown = client.post("/v1/datasets", headers=auth, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(b"x"), "notes.txt")})
    assert unknown.status_code == 415
    assert "use a .csv, .npz or .json file" in unknown.get_json()["detail"]


def test_a_features_only_upload_is_scored_not_trained_on(
        client: FlaskClient, auth: dict[str, str]) -> None:
    X, _ = blobs(20)
    X[3, 1] = np.nan  # kept: a batch prediction lists the row
    header = ",".join(f"f{i}" for i in range(X.shape[1]))
    csv_text = "\n".join([header, *(",".join(repr(float(v)) for v in row) for row in X)])
    raw = client.post("/v1/datasets?features_only=true", data=csv_text.encode(),
                      headers={**auth, "Content-Type": "text/csv"})
    assert raw.status_code == 201, raw.data
    multipart = client.post("/v1/datasets", headers=auth, data={
        "file": (io.BytesIO(csv_text.encode()), "rows.csv"), "features_only": "true"},
        content_type="multipart/form-data")
    assert multipart.status_code == 200  # the same bytes read the same way: the stored one
    body = raw.get_json()
    assert multipart.get_json()["id"] == body["id"]
    assert (body["kind"], body["x_shape"], body["y_shape"], body["classes"]) == (
        "features", [20, 4], [20, 0], None)

    # The same bytes read with a target are another dataset (the last column as labels).
    with_target = client.post("/v1/datasets", data=csv_bytes(*blobs(20)),
                              headers={**auth, "Content-Type": "text/csv"})
    assert with_target.status_code == 201

    for path, spec in (("/v1/jobs", mlp_spec(body["id"])),
                       ("/v1/jobs:validate", mlp_spec(body["id"]))):
        refused = assert_problem(client.post(path, json=spec, headers=auth), 422)
        assert [e["field"] for e in refused["errors"]] == ["dataset"]
        assert "features_only" in refused["errors"][0]["message"]


def test_features_only_refusals_name_the_field(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    X, y = blobs(10)
    cases = [
        ("/v1/datasets?features_only=true&target=label", csv_bytes(X, y), "text/csv",
         "target"),
        ("/v1/datasets?features_only=true", npz_bytes(X=X, y=y), "application/x-npz",
         "features_only"),
        ("/v1/datasets", npz_bytes(X=X), "application/x-npz", "file"),  # no flag: needs y
    ]
    for path, data, media, field in cases:
        problem = assert_problem(client.post(path, data=data, headers={
            **auth, "Content-Type": media}), 422)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    bad_flag = assert_problem(client.post("/v1/datasets", headers=auth, data={
        "file": (io.BytesIO(npz_bytes(X=X)), "rows.npz"), "features_only": "maybe"},
        content_type="multipart/form-data"), 422)
    assert [e["field"] for e in bad_flag["errors"]] == ["features_only"]
    assert client.get("/v1/datasets", headers=auth).get_json()["items"] == []


def test_uint8_images_are_stored_and_trained_on_as_uint8(
    client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Any,
) -> None:
    """Issue 18: an image upload is not widened: the worker gets the uint8 pixels back (a
    quarter of float32's bytes) and a job's validation takes them like floats."""
    from store import keys
    from worker import store_ops

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 1, 8, 8)).astype(np.uint8)
    y = np.arange(40) % 3
    up = client.post("/v1/datasets?name=pixels", data=npz_bytes(X=X, y=y),
                     headers={**auth, "Content-Type": "application/x-npz"})
    assert up.status_code == 201, up.data
    ident = up.get_json()["id"]
    with session_factory() as s:
        tenant = keys.tenant_for_key(s, auth["Authorization"].split()[1])
        claimed = store_ops.Claimed(attempts=1, tenant_id=str(tenant), spec={"dataset": ident},
                                    dataset_id=ident, last_error=None)
        stored_X, stored_y = store_ops.load_dataset(s, claimed, settings)
    assert stored_X.dtype == np.uint8 and stored_X.tobytes() == X.tobytes()
    assert stored_X.nbytes * 4 == X.astype(np.float32).nbytes
    assert stored_y.tolist() == y.tolist()
    spec = {"dataset": ident, "model": {"layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "flatten"},
        {"type": "dense", "units": 3}]}, "training": {"epochs": 1}}
    checked = client.post("/v1/jobs:validate", json=spec, headers=auth)
    assert checked.status_code == 200, checked.data
