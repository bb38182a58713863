"""`/v1/checkpoints`: import, metadata with statistics, weights.npz, one layer, isolation."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from tests.service.helpers import assert_problem, npz_bytes

MODEL = {"layers": [{"type": "dense", "units": 5, "activation": "relu"},
                    {"type": "dense", "units": 3}]}


def weights_npz(seed: int = 1, features: int = 4) -> tuple[bytes, Any]:
    from core.checkpoint import export_weights_npz
    from core.network import build_network

    network = build_network(MODEL, (features,), seed=seed, dtype="float64", loss="mse")
    return export_weights_npz(network), network


def import_weights(client: FlaskClient, auth: dict[str, str], payload: bytes | None = None,
                   **query: str) -> Any:
    payload = weights_npz()[0] if payload is None else payload
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(f"/v1/checkpoints?{qs}", data=payload,
                       headers={**auth, "Content-Type": "application/x-npz"})


@pytest.fixture
def imported(client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    response = import_weights(client, auth)
    assert response.status_code == 201, response.data
    body: dict[str, Any] = response.get_json()
    return body


def test_import_returns_the_checkpoint(client: FlaskClient, auth: dict[str, str]) -> None:
    payload, _ = weights_npz()
    response = import_weights(client, auth, payload)
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/checkpoints/{body['id']}"
    assert body["kind"] == "imported" and body["job_id"] is None
    assert body["size_bytes"] == len(payload)


def test_multipart_import_with_a_separate_spec(client: FlaskClient, auth: dict[str, str]) -> None:
    payload, _ = weights_npz()
    with np.load(io.BytesIO(payload)) as npz:
        bare = npz_bytes(**{k: npz[k] for k in npz.files if k != "__spec__"})
    assert_problem(import_weights(client, auth, bare), 422)  # no spec anywhere
    response = client.post("/v1/checkpoints", headers=auth, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(bare), "w.npz"),
                                 "spec": json.dumps(MODEL)})
    assert response.status_code == 201, response.data


def test_detail_has_per_layer_statistics(client: FlaskClient, auth: dict[str, str]) -> None:
    payload, network = weights_npz(seed=3)
    ident = import_weights(client, auth, payload).get_json()["id"]
    body = client.get(f"/v1/checkpoints/{ident}", headers=auth).get_json()
    stats = {layer["name"]: layer for layer in body["layers"]}
    assert set(stats) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    w = network.params["0.weight"]
    assert stats["0.weight"]["shape"] == [4, 5]
    assert stats["0.weight"]["mean"] == pytest.approx(float(w.mean()), rel=1e-12)
    assert stats["0.weight"]["std"] == pytest.approx(float(w.std()), rel=1e-12)
    assert stats["0.weight"]["min"] == pytest.approx(float(w.min()))
    assert stats["0.weight"]["max"] == pytest.approx(float(w.max()))
    assert stats["0.weight"]["frobenius"] == pytest.approx(float(np.linalg.norm(w)), rel=1e-12)
    assert body["model_spec"]["layers"][0]["units"] == 5


def test_weights_npz_round_trips(client: FlaskClient, auth: dict[str, str]) -> None:
    payload, network = weights_npz(seed=4)
    ident = import_weights(client, auth, payload).get_json()["id"]
    response = client.get(f"/v1/checkpoints/{ident}/weights.npz", headers=auth)
    assert response.status_code == 200 and response.mimetype == "application/x-npz"
    with np.load(io.BytesIO(response.data), allow_pickle=False) as npz:
        for name, value in network.params.items():
            np.testing.assert_array_equal(npz[name], value)
        assert json.loads(str(npz["__spec__"][()]))["layers"][1]["units"] == 3


def test_one_layer_as_json_or_npy(client: FlaskClient, auth: dict[str, str]) -> None:
    payload, network = weights_npz(seed=5)
    ident = import_weights(client, auth, payload).get_json()["id"]
    url = f"/v1/checkpoints/{ident}/layers/1.weight"
    as_json = client.get(url, headers=auth).get_json()
    assert as_json["shape"] == [5, 3] and as_json["dtype"] == "float64"
    np.testing.assert_array_equal(np.array(as_json["values"]), network.params["1.weight"])
    npy = client.get(url, headers={**auth, "Accept": "application/x-npy"})
    assert npy.status_code == 200 and npy.mimetype == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.data)), network.params["1.weight"])
    assert_problem(client.get(url, headers={**auth, "Accept": "text/html"}), 406)
    assert_problem(client.get(f"/v1/checkpoints/{ident}/layers/9.weight", headers=auth), 404)


def test_another_tenants_checkpoint_is_404_everywhere(
    client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
    imported: dict[str, Any],
) -> None:
    ident = imported["id"]
    for url in (f"/v1/checkpoints/{ident}", f"/v1/checkpoints/{ident}/weights.npz",
                f"/v1/checkpoints/{ident}/layers/0.weight"):
        assert_problem(client.get(url, headers=other_auth), 404)
        assert client.get(url, headers=auth).status_code == 200
    response = client.post(f"/v1/checkpoints/{ident}/predict", json={"inputs": [[0, 0, 0, 0]]},
                           headers=other_auth)
    assert_problem(response, 404)


def _pickled() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{"0.weight": np.array([object()], dtype=object)})
    return buffer.getvalue()


def _wrong_shapes() -> bytes:
    payload, _ = weights_npz()
    with np.load(io.BytesIO(payload)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["1.weight"] = np.zeros((7, 3))
    return npz_bytes(**arrays)


@pytest.mark.parametrize(("case", "payload", "status"), [
    ("pickled", _pickled(), 422),
    ("zip bomb", npz_bytes(**{"0.weight": np.zeros((3000, 3000))}), 413),
    ("not a zip", b"garbage", 422),
    ("wrong shapes", _wrong_shapes(), 422),
])
def test_hostile_import_is_refused_and_nothing_stored(
    client: FlaskClient, auth: dict[str, str], session_factory: Any,
    case: str, payload: bytes, status: int,
) -> None:
    from sqlalchemy import func, select

    from store.models import Checkpoint

    assert_problem(import_weights(client, auth, payload), status)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Checkpoint)) == 0


def test_import_needs_an_npz_content_type(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/checkpoints", data=b"{}",
                           headers={**auth, "Content-Type": "text/plain"})
    assert_problem(response, 415)


def _logits(network: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(network.forward(X, training=False), dtype=np.float64)


def test_import_with_a_loss_predicts_through_its_link(client: FlaskClient,
                                                      auth: dict[str, str]) -> None:
    payload, network = weights_npz(seed=6)
    X = np.random.default_rng(0).normal(size=(7, 4))
    logits = _logits(network, X)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    ident = import_weights(client, auth, payload, loss="cross_entropy").get_json()["id"]
    answer = client.post(f"/v1/checkpoints/{ident}/predict", json={"inputs": X.tolist()},
                         headers=auth).get_json()
    np.testing.assert_allclose(answer["outputs"], probs, rtol=1e-12)
    assert answer["classes"] == logits.argmax(axis=1).tolist()
    detail = client.get(f"/v1/checkpoints/{ident}", headers=auth).get_json()
    assert detail["loss"] == "cross_entropy"
    assert detail["model_spec"] == {"layers": detail["model_spec"]["layers"]}  # loss apart

    raw_id = import_weights(client, auth, payload).get_json()["id"]
    raw = client.post(f"/v1/checkpoints/{raw_id}/predict", json={"inputs": X.tolist()},
                      headers=auth).get_json()
    np.testing.assert_allclose(raw["outputs"], logits, rtol=1e-12)
    assert raw["classes"] is None
    assert client.get(f"/v1/checkpoints/{raw_id}", headers=auth).get_json()["loss"] is None


def test_multipart_import_takes_a_sigmoid_loss(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    from core.checkpoint import export_weights_npz
    from core.network import build_network

    one = {"layers": [{"type": "dense", "units": 1}]}
    network = build_network(one, (4,), seed=2, dtype="float64", loss="mse")
    response = client.post("/v1/checkpoints", headers=auth, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(export_weights_npz(network)), "w.npz"),
                                 "loss": "binary_cross_entropy"})
    assert response.status_code == 201, response.data
    X = np.random.default_rng(1).normal(size=(9, 4)) * 3.0
    z = _logits(network, X)[:, 0]
    answer = client.post(f"/v1/checkpoints/{response.get_json()['id']}/predict",
                         json={"inputs": X.tolist()}, headers=auth).get_json()
    np.testing.assert_allclose(np.asarray(answer["outputs"])[:, 0], 1.0 / (1.0 + np.exp(-z)),
                               rtol=1e-12)
    assert answer["classes"] == (z > 0).astype(int).tolist()


def test_an_unknown_import_loss_is_refused_and_nothing_stored(
    client: FlaskClient, auth: dict[str, str], session_factory: Any,
) -> None:
    from sqlalchemy import func, select

    from store.models import Checkpoint

    body = assert_problem(import_weights(client, auth, loss="softmax"), 422)
    assert body["errors"][0]["field"].endswith("loss")
    form = client.post("/v1/checkpoints", headers=auth, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(weights_npz()[0]), "w.npz"), "loss": "hinge"})
    assert assert_problem(form, 422)["errors"] == [
        {"field": "loss", "message": "unknown loss 'hinge'; expected one of "
         "['binary_cross_entropy', 'cross_entropy', 'huber', 'mae', 'mse']"}]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Checkpoint)) == 0


def test_the_import_loss_enum_is_core_spec_loss_types() -> None:
    from typing import get_args

    from core.spec import LOSS_TYPES
    from service.schemas.checkpoints import LossType

    assert set(get_args(LossType)) == set(LOSS_TYPES)
