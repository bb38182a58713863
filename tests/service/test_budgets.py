"""Budgets enforced before work (issue 19): a job's estimated training memory, FLOPs per
epoch, layers and parameters at validate, submit and resume; an import's and a predict
batch's activation memory; the model cache by bytes.

Every refusal names the field (the layer that takes most of the budget) and both figures,
and stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config.settings import Settings
from service.app import create_app
from tests.hostile_payloads import PADDED_CONV_ESTIMATES, conv_weights, deep_relus, padded_conv
from tests.service.conftest import TEST_LIMITS, make_key
from tests.service.helpers import assert_problem, mlp_spec, npz_bytes

GiB = 2**30


def key_for(app: OpenAPI) -> dict[str, str]:
    key = make_key(app.extensions["weightsmith"].session_factory, "a")
    return {"Authorization": f"Bearer {key}"}


def jobs_stored(client: FlaskClient, auth: dict[str, str]) -> int:
    return len(client.get("/v1/jobs", headers=auth).get_json()["items"])


@pytest.mark.parametrize(("padding", "estimate"), PADDED_CONV_ESTIMATES.items())
def test_a_padded_conv_is_refused_naming_the_layer_and_both_figures(
    client: FlaskClient, auth: dict[str, str], broker_messages: Any, padding: int,
    estimate: str,
) -> None:
    for url in ("/v1/jobs:validate", "/v1/jobs"):
        body = assert_problem(client.post(url, json=padded_conv(padding), headers=auth), 422)
        memory = [e for e in body["errors"] if "memory" in e["message"]]
        assert [e["field"] for e in memory] == ["model.layers[0]"], body
        message = memory[0]["message"]
        assert f"training needs an estimated {estimate} of memory" in message
        assert "for layer 0 (conv2d) with a batch of 32" in message
        assert "the limit is 2,147,483,648 bytes (2 GiB)" in message
    assert jobs_stored(client, auth) == 0
    assert broker_messages() == []


def test_many_relu_layers_are_refused_before_the_spec_is_parsed(
    tmp_path: Path, migrated: None, broker_messages: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10^5 layers (4.6 MB) are over the spec size (413 `spec`); 5,000 layers fit in it
    (230 KB) and are over the layer cap: 422 `model.layers`, counted before parsing."""
    from core.spec import Spec

    app = create_app(settings_with(tmp_path, max_upload_bytes=64 * 2**20), testing=True)
    client = app.test_client()
    auth = key_for(app)

    def never(*_: Any) -> Any:
        raise AssertionError("the layer cap comes before parsing")

    monkeypatch.setattr(Spec, "from_dict", never)
    for url in ("/v1/jobs:validate", "/v1/jobs"):
        huge = assert_problem(client.post(url, json=deep_relus(100_000), headers=auth), 413)
        assert [e["field"] for e in huge["errors"]] == ["spec"]
        body = assert_problem(client.post(url, json=deep_relus(5_000), headers=auth), 422)
        assert body["errors"] == [{"field": "model.layers", "message":
                                   "5,001 layers; a model has at most 1,000"}]
    assert jobs_stored(client, auth) == 0
    assert broker_messages() == []


def settings_with(tmp_path: Path, **limits: Any) -> Settings:
    return Settings(data_dir=tmp_path, limits=TEST_LIMITS.__class__(
        **{**TEST_LIMITS.__dict__, **limits}))


def test_flops_per_epoch_are_a_budget(tmp_path: Path, migrated: None) -> None:
    app = create_app(settings_with(tmp_path, max_flops_per_epoch=10**7), testing=True)
    client = app.test_client()
    auth = key_for(app)
    spec = mlp_spec("builtin:digits", hidden=64, outputs=10)
    body = assert_problem(client.post("/v1/jobs", json=spec, headers=auth), 422)
    # digits: 1617 training rows x 3 x (8320 + 1290) forward FLOPs, + 180 validation rows x 9610
    (error,) = body["errors"]
    assert error["field"] == "model.layers[0]"
    assert error["message"].startswith("an epoch needs an estimated 4.83e+07 FLOPs")
    assert error["message"].endswith("the limit is 1e+07 per epoch")
    assert jobs_stored(client, auth) == 0


def test_resume_checks_the_budget_again(tmp_path: Path, migrated: None) -> None:
    """A job submitted under one budget is resumed under the budget of the day."""
    generous = create_app(settings_with(tmp_path), testing=True)
    key = make_key(generous.extensions["weightsmith"].session_factory, "a")
    auth = {"Authorization": f"Bearer {key}"}
    client = generous.test_client()
    # Diagnostics off: their copy of the parameters would make layer 0's share (467,981
    # bytes) pass the data's, the part this test shows.
    job = client.post("/v1/jobs", json=mlp_spec("builtin:digits", hidden=64, outputs=10,
                                                diagnostics=False),
                      headers=auth).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 200
    strict = create_app(settings_with(tmp_path, max_training_memory_bytes=100_000),
                        testing=True).test_client()
    body = assert_problem(strict.post(f"/v1/jobs/{job['id']}/resume", headers=auth), 422)
    # The digits themselves (held once: a run copies no data) are the largest part.
    assert body["errors"] == [{"field": "dataset", "message": (
        "training needs an estimated 1,055,424 bytes (1.01 MiB) of memory (460,032 bytes "
        "(449 KiB) of it for the data); the limit is 100,000 bytes (97.7 KiB)")}]
    assert strict.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "cancelled"


def import_npz(client: FlaskClient, auth: dict[str, str], data: bytes) -> Any:
    return client.post("/v1/checkpoints", data=data,
                       headers={**auth, "Content-Type": "application/x-npz"})


def checkpoints_stored(app: OpenAPI) -> int:
    import sqlalchemy as sa

    from store.models import Checkpoint

    with app.extensions["weightsmith"].session_factory() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Checkpoint)) or 0)


def test_an_import_that_cannot_predict_one_row_is_refused(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str],
) -> None:
    body = assert_problem(import_npz(client, auth, conv_weights(100_000)), 422)
    (error,) = body["errors"]
    assert error["field"] == "file"
    assert error["message"].startswith("a batch of 1 rows needs an estimated 320,")
    assert "for layer 0 (Conv2D)" in error["message"]
    assert error["message"].endswith("the limit is 268,435,456 bytes (256 MiB)")
    assert checkpoints_stored(app) == 0


def test_predict_refuses_a_batch_whose_activations_exceed_the_budget(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str],
) -> None:
    """Padding 1200: one row is 46 MB of activations; 100 rows were 3 GB of API memory."""
    created = import_npz(client, auth, conv_weights(1200))
    assert created.status_code == 201, created.data
    ident = created.get_json()["id"]
    one = client.post(f"/v1/checkpoints/{ident}/predict", json={"inputs": [[[0.0] * 8] * 8]},
                      headers=auth)
    assert one.status_code == 200, one.data
    cache = app.extensions["weightsmith"].model_cache
    assert 46_000_000 < cache.bytes <= app.extensions["weightsmith"].settings.model_cache_bytes
    rows = [[[0.0] * 8] * 8] * 100
    body = assert_problem(client.post(f"/v1/checkpoints/{ident}/predict",
                                      json={"inputs": rows}, headers=auth), 413)
    (error,) = body["errors"]
    assert error["field"] == "inputs"
    assert error["message"].startswith("a batch of 100 rows needs an estimated 4,638,")
    assert error["message"].endswith("the limit is 268,435,456 bytes (256 MiB)")


def test_the_model_cache_is_bounded_by_bytes(tmp_path: Path, migrated: None) -> None:
    settings = Settings(data_dir=tmp_path, limits=TEST_LIMITS, model_cache_bytes=3_000_000)
    app = create_app(settings, testing=True)
    client = app.test_client()
    auth = key_for(app)
    cache = app.extensions["weightsmith"].model_cache
    rng = np.random.default_rng(0)
    spec = json.dumps({"layers": [{"type": "dense", "units": 500}]})
    for _ in range(6):  # 6 x (300 x 500 weights and their gradients: ~1.2 MB each)
        data = npz_bytes(**{"0.weight": rng.normal(size=(300, 500)).astype(np.float32),
                            "0.bias": np.zeros(500, np.float32), "__spec__": np.array(spec)})
        created = import_npz(client, auth, data)
        assert created.status_code == 201, created.data
        ident = created.get_json()["id"]
        out = client.post(f"/v1/checkpoints/{ident}/predict",
                          json={"inputs": [[0.0] * 300]}, headers=auth)
        assert out.status_code == 200
        assert cache.bytes <= 3_000_000
    assert 0 < len(cache) < 6


def test_fork_and_reproduce_check_the_budget_too(tmp_path: Path, migrated: None) -> None:
    from worker.runner import JobRunner

    generous = create_app(settings_with(tmp_path), testing=True)
    auth = key_for(generous)
    client = generous.test_client()
    job = client.post("/v1/jobs", json=mlp_spec("builtin:digits", hidden=64, outputs=10,
                                                epochs=1, diagnostics=False),
                      headers=auth).get_json()  # the data the largest part, as above
    services = generous.extensions["weightsmith"]
    assert JobRunner(services.session_factory, services.settings, job["id"], "w").run() \
        == "succeeded"
    strict = create_app(settings_with(tmp_path, max_training_memory_bytes=100_000),
                        testing=True).test_client()
    for path, body in ((f"/v1/jobs/{job['id']}/fork", {"optimizer_state": "reset"}),
                       (f"/v1/jobs/{job['id']}/reproduce", None)):
        problem = assert_problem(strict.post(path, json=body, headers=auth), 422)
        assert [e["field"] for e in problem["errors"]] == ["dataset"], path
        assert "the limit is 100,000 bytes (97.7 KiB)" in problem["errors"][0]["message"]
    assert jobs_stored(client, auth) == 1
