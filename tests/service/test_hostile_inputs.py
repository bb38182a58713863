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

from tests.hostile_payloads import (
    DEEP,
    FLOAT32_OVERFLOWS,
    IMPORT_CASES,
    PREDICT_NOT_NUMBERS,
    arrays_of,
    changed,
    float32_weights,
)
from tests.service.helpers import assert_problem, npz_bytes
from tests.service.test_checkpoints import import_weights, weights_npz


@pytest.mark.parametrize(("case", "make", "status", "fragment"), IMPORT_CASES,
                         ids=[case[0] for case in IMPORT_CASES])
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


@pytest.mark.parametrize(("inputs", "fragment"), [case[1:] for case in PREDICT_NOT_NUMBERS],
                         ids=[case[0] for case in PREDICT_NOT_NUMBERS])
def test_predict_takes_json_numbers_only(client: FlaskClient, auth: dict[str, str],
                                         checkpoint_id: str, inputs: list[Any],
                                         fragment: str) -> None:
    response = client.post(f"/v1/checkpoints/{checkpoint_id}/predict",
                           json={"inputs": inputs}, headers=auth)
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "inputs" and fragment in problem["detail"]


def test_predict_refuses_inputs_that_overflow_a_float32_model(
        client: FlaskClient, auth: dict[str, str]) -> None:
    response = import_weights(client, auth, float32_weights())
    assert response.status_code == 201, response.data
    url = f"/v1/checkpoints/{response.get_json()['id']}/predict"
    for value in FLOAT32_OVERFLOWS:
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
