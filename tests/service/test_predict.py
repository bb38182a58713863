"""Predict on a checkpoint: outputs equal the network's own, inputs checked, model cached."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.service.helpers import assert_problem
from tests.service.test_checkpoints import import_weights, weights_npz


@pytest.fixture
def model(client: FlaskClient, auth: dict[str, str]) -> tuple[str, Any]:
    payload, network = weights_npz(seed=7)
    response = import_weights(client, auth, payload)
    assert response.status_code == 201, response.data
    return response.get_json()["id"], network


def test_outputs_equal_the_networks(client: FlaskClient, auth: dict[str, str], app: Any,
                                    model: tuple[str, Any]) -> None:
    ident, network = model
    X = np.random.default_rng(0).normal(size=(6, 4))
    response = client.post(f"/v1/checkpoints/{ident}/predict", json={"inputs": X.tolist()},
                           headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["checkpoint_id"] == ident
    np.testing.assert_allclose(np.array(body["outputs"]), network.predict(X), rtol=1e-12)
    # A weights.npz does not say which loss it was trained with: raw outputs, no classes.
    assert body["classes"] is None
    cache = app.extensions["weightsmith"].model_cache
    assert ident in cache
    hits = cache.hits
    client.post(f"/v1/checkpoints/{ident}/predict", json={"inputs": X.tolist()}, headers=auth)
    assert cache.hits == hits + 1


@pytest.mark.parametrize(("inputs", "status", "message"), [
    ([[1.0, 2.0, 3.0]], 422, "shape [4]"),
    ([[1.0, 2.0, 3.0, float("nan")]], 422, "NaN"),
    ([[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]], 422, "rectangular"),
    ([[[1.0, 2.0, 3.0, 4.0]]], 422, "shape [4]"),
    ([], 422, "at least one row"),
    ([["a", "b", "c", "d"]], 422, "numbers"),
    ([[0.0] * 4] * 101, 413, "at most 100"),
])
def test_bad_inputs_are_refused(client: FlaskClient, auth: dict[str, str],
                                model: tuple[str, Any], inputs: Any, status: int,
                                message: str) -> None:
    response = client.post(f"/v1/checkpoints/{model[0]}/predict", json={"inputs": inputs},
                           headers=auth)
    body = assert_problem(response, status)
    assert message in body["detail"]


def test_infinity_in_raw_json_is_refused(client: FlaskClient, auth: dict[str, str],
                                         model: tuple[str, Any]) -> None:
    response = client.post(f"/v1/checkpoints/{model[0]}/predict",
                           data=b'{"inputs": [[1, 2, 3, Infinity]]}',
                           headers={**auth, "Content-Type": "application/json"})
    assert "NaN or infinity" in assert_problem(response, 422)["detail"]


def test_unknown_fields_and_missing_checkpoint(client: FlaskClient, auth: dict[str, str],
                                               model: tuple[str, Any]) -> None:
    response = client.post(f"/v1/checkpoints/{model[0]}/predict",
                           json={"inputs": [[0, 0, 0, 0]], "extra": 1}, headers=auth)
    assert assert_problem(response, 422)["errors"][0]["field"] == "extra"
    response = client.post("/v1/checkpoints/ckpt_missing/predict", json={"inputs": [[0] * 4]},
                           headers=auth)
    assert_problem(response, 404)
