"""The smaller hostile inputs of issue 19: each a 4xx naming its field, nothing stored.

Imports: weights of an unsupported dtype, NaN or infinite weights, a zero `__input_std__`, a
`__spec__` nested 10^5 deep or over the spec size, a member whose CRC lies, a `.npy` header
that is malformed or declares more data than its member holds (all answered 500 or 201
before). Predict: strings and booleans are not numbers, and an input past the model dtype's
largest number is refused (1e308 in float32 answered null outputs). Job specs over
`max_spec_bytes` are refused before they are parsed.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.service.helpers import assert_problem, npz_bytes
from tests.service.test_checkpoints import import_weights, weights_npz


def arrays_of(payload: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(payload)) as npz:
        return {k: npz[k] for k in npz.files}


def changed(**replace: Any) -> bytes:
    return npz_bytes(**{**arrays_of(weights_npz()[0]), **replace})


def with_member(name: str, edit: Callable[[bytes], bytes]) -> bytes:
    """The weights with one member's bytes (header included) edited, re-zipped as is."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights_npz()[0])) as src, \
            zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, edit(data) if info.filename == name else data)
    return out.getvalue()


def with_lying_crc(name: str) -> bytes:
    """A stored (uncompressed) member whose last data byte no longer matches its CRC-32."""
    payload = bytearray(weights_npz()[0])
    with zipfile.ZipFile(io.BytesIO(bytes(payload))) as archive:
        info = archive.getinfo(name)
    offset = info.header_offset
    name_len = int.from_bytes(payload[offset + 26:offset + 28], "little")
    extra_len = int.from_bytes(payload[offset + 28:offset + 30], "little")
    payload[offset + 30 + name_len + extra_len + info.compress_size - 1] ^= 0xFF
    return bytes(payload)


def npy_header(descr: str, shape: str) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        end = data.index(b"\n")
        header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
        return data[:10] + header.encode().ljust(end - 10) + data[end:]
    return edit


def weights(key: str) -> Any:
    return arrays_of(weights_npz()[0])[key]


DEEP = "[" * 100_000 + "]" * 100_000
CASES = [
    ("float16 weights", lambda: changed(**{"0.weight": weights("0.weight").astype(np.float16)}),
     422, "0.weight: dtype float16 is not supported"),
    ("integer weights", lambda: changed(**{"0.weight": weights("0.weight").astype(np.int64)}),
     422, "dtype int64 is not supported"),
    ("complex weights", lambda: changed(**{"1.bias": weights("1.bias").astype(np.complex128)}),
     422, "1.bias: dtype complex128 is not supported"),
    ("NaN weights", lambda: changed(**{"0.weight": np.full_like(weights("0.weight"), np.nan)}),
     422, "0.weight: NaN or infinite values"),
    ("infinite bias", lambda: changed(**{"1.bias": np.full_like(weights("1.bias"), np.inf)}),
     422, "1.bias: NaN or infinite values"),
    ("zero std", lambda: changed(__input_mean__=np.zeros(4), __input_std__=np.array(
        [1.0, 0.0, 1.0, 1.0])), 422, "__input_std__: every std must be positive"),
    ("__spec__ nested 10^5 deep", lambda: changed(__spec__=np.array(DEEP)),
     422, "nests 100000 levels deep"),
    ("__spec__ over the spec size", lambda: changed(__spec__=np.array(
        json.dumps({"layers": [{"type": "dense", "units": 3}], "pad": "x" * 300_000}))),
     413, "the spec is"),
    ("a member whose CRC lies", lambda: with_lying_crc("0.weight.npy"),
     422, "Bad CRC-32"),
    ("malformed .npy header", lambda: with_member("0.weight.npy", npy_header("<f8", "(4, 5) x")),
     422, "not a .npy array"),
    (".npy header declaring 2.9 TiB", lambda: with_member(
        "0.weight.npy", npy_header("<f8", "(99999999999, 5)")), 422, "the header declares"),
]


@pytest.mark.parametrize(("case", "make", "status", "fragment"), CASES,
                         ids=[case[0] for case in CASES])
def test_a_hostile_import_is_refused_naming_the_file_and_nothing_is_stored(
        client: FlaskClient, auth: dict[str, str], session_factory: Any, case: str,
        make: Callable[[], bytes], status: int, fragment: str) -> None:
    from sqlalchemy import func, select

    from store.models import Checkpoint

    problem = assert_problem(import_weights(client, auth, make()), status)
    assert problem["errors"][0]["field"] == "file"
    assert fragment in problem["errors"][0]["message"], problem
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Checkpoint)) == 0


def test_a_lying_crc_in_a_big_member_is_caught_when_the_core_reads_it(
        client: FlaskClient, auth: dict[str, str]) -> None:
    """The guard reads only headers; a CRC checked at the end of a long member is the core's."""
    big = changed(**{"0.weight": np.ones((4, 5)), "extra": np.zeros(100_000)})
    payload = bytearray(big)
    with zipfile.ZipFile(io.BytesIO(big)) as archive:
        info = archive.getinfo("extra.npy")
    offset = info.header_offset
    skip = 30 + int.from_bytes(payload[offset + 26:offset + 28], "little") \
        + int.from_bytes(payload[offset + 28:offset + 30], "little")
    payload[offset + skip + info.compress_size - 1] ^= 0xFF
    problem = assert_problem(import_weights(client, auth, bytes(payload)), 422)
    assert problem["errors"][0]["field"] == "file"


def test_a_spec_given_beside_the_file_is_bounded_too(client: FlaskClient,
                                                     auth: dict[str, str]) -> None:
    arrays = arrays_of(weights_npz()[0])
    del arrays["__spec__"]
    response = client.post("/v1/checkpoints", data={
        "file": (io.BytesIO(npz_bytes(**arrays)), "w.npz"), "spec": DEEP[:2000] + DEEP[-2000:]},
        headers=auth, content_type="multipart/form-data")
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "spec"


@pytest.fixture
def checkpoint_id(client: FlaskClient, auth: dict[str, str]) -> str:
    response = import_weights(client, auth, loss="cross_entropy")
    assert response.status_code == 201, response.data
    return str(response.get_json()["id"])


@pytest.mark.parametrize(("inputs", "fragment"), [
    ([["1", 0, 0, 0]], "JSON numbers only, got string"),
    ([[True, 0, 0, 0]], "JSON numbers only, got boolean"),
    ([[1, 0, 0, 0], [0, 0, None, 0]], "JSON numbers only, got null"),
    ([[[1, {"a": 1}], 0, 0, 0]], "JSON numbers only"),
], ids=["string", "boolean", "null", "object"])
def test_predict_takes_json_numbers_only(client: FlaskClient, auth: dict[str, str],
                                         checkpoint_id: str, inputs: list[Any],
                                         fragment: str) -> None:
    response = client.post(f"/v1/checkpoints/{checkpoint_id}/predict",
                           json={"inputs": inputs}, headers=auth)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "inputs" and fragment in problem["detail"]


def test_predict_refuses_inputs_that_overflow_a_float32_model(
        client: FlaskClient, auth: dict[str, str]) -> None:
    arrays = {k: (v.astype(np.float32) if v.dtype == np.float64 else v)
              for k, v in arrays_of(weights_npz()[0]).items()}
    response = import_weights(client, auth, npz_bytes(**arrays))
    assert response.status_code == 201, response.data
    url = f"/v1/checkpoints/{response.get_json()['id']}/predict"
    for value in (1e308, -1e39, 3.5e38):
        problem = assert_problem(client.post(url, json={"inputs": [[value, 0, 0, 0]]},
                                             headers=auth), 422)
        assert problem["errors"][0]["field"] == "inputs"
        assert "overflows the model's float32" in problem["detail"]
    ok = client.post(url, json={"inputs": [[3.0e38, 0, 0, 0], [1, 2, 3, 4]]}, headers=auth)
    assert ok.status_code == 200 and len(ok.get_json()["outputs"]) == 2


def test_a_job_spec_over_the_spec_size_is_413_before_it_is_parsed(
        client: FlaskClient, auth: dict[str, str], settings: Any) -> None:
    layers = [{"type": "activation", "activation": "relu"}] * 20_000
    spec = {"name": "wide", "dataset": "builtin:xor",
            "model": {"layers": [*layers, {"type": "dense", "units": 2}]}}
    body = json.dumps(spec)
    assert len(body) > settings.limits.max_spec_bytes
    for path in ("/v1/jobs:validate", "/v1/jobs"):
        response = client.post(path, data=body,
                               headers={**auth, "Content-Type": "application/json"})
        problem = assert_problem(response, 413)
        assert problem["errors"][0]["field"] == "spec"
    assert client.get("/v1/jobs", headers=auth).get_json()["items"] == []


def test_spec_nesting_is_measured_without_parsing() -> None:
    from service.spec_limits import nesting_depth

    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{"}], "c": "\\"]]"}') == 3
    assert nesting_depth(b"3") == 0
    assert nesting_depth(DEEP.encode()) == 100_000
