"""Issue 16's Show for batch predictions at scale: 100,000 rows, uploaded without a target
(`features_only`), scored in input order by the worker's scorer; 200 random rows equal
`/predict` on the same checkpoint. Seconds, not minutes: a 4-8-3 MLP, 4,096-row chunks."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config.settings import Settings
from tests.service.conftest import TEST_LIMITS
from tests.service.helpers import assert_problem, blobs, mlp_spec, npz_bytes, upload_csv
from worker.batch_scoring import score
from worker.runner import JobRunner

ROWS = 100_000
MiB = 2**20


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The service tests' limits, with room for a 100,000-row upload."""
    return Settings(data_dir=tmp_path, limits=replace(
        TEST_LIMITS, max_dataset_rows=ROWS, max_upload_bytes=16 * MiB,
        max_stored_bytes=64 * MiB))


def test_100000_rows_are_scored_in_input_order_and_equal_predict(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str]) -> None:
    train_set = upload_csv(client, auth, n=300)
    job = client.post("/v1/jobs", json=mlp_spec(train_set["id"], epochs=2), headers=auth)
    sessions = app.extensions["weightsmith"].session_factory
    assert JobRunner(sessions, settings, job.get_json()["id"], "w").run() == "succeeded"

    X = blobs(ROWS, seed=1)[0]
    uploaded = client.post("/v1/datasets?name=to-score&features_only=true",
                           data=npz_bytes(X=X), headers={**auth,
                                                         "Content-Type": "application/x-npz"})
    assert uploaded.status_code == 201, uploaded.data
    dataset = uploaded.get_json()
    assert (dataset["kind"], dataset["x_shape"], dataset["y_shape"]) == (
        "features", [ROWS, 4], [ROWS, 0])
    # Scoring only: a job on it is refused, naming the field.
    refused = assert_problem(client.post("/v1/jobs", json=mlp_spec(dataset["id"]),
                                         headers=auth), 422)
    assert [e["field"] for e in refused["errors"]] == ["dataset"]

    batch = client.post("/v1/batch-predictions", headers=auth, json={
        "job_id": job.get_json()["id"], "dataset_id": dataset["id"]}).get_json()
    started = time.perf_counter()
    assert score(sessions, settings, batch["id"], "w") == "succeeded"
    scored_s = time.perf_counter() - started
    done = client.get(f"/v1/batch-predictions/{batch['id']}", headers=auth).get_json()
    assert (done["status"], done["rows_done"], done["error_count"]) == ("succeeded", ROWS, 0)

    response = client.get(f"/v1/batch-predictions/{batch['id']}/result", headers=auth)
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(response.data.decode())))
    assert len(lines) == ROWS
    got = np.array([[float(v) for v in line[:3]] for line in lines])
    from core.checkpoint import load_checkpoint
    from store import checkpoints as store_checkpoints

    with sessions() as s:
        blob = store_checkpoints.get_blob(s, done["checkpoint_id"])
    assert blob is not None
    expected = load_checkpoint(blob).predict(X)
    np.testing.assert_array_equal(got, expected)  # every row, in input order
    assert [int(line[3]) for line in lines] == expected.argmax(axis=1).tolist()

    picks = np.random.default_rng(0).choice(ROWS, size=200, replace=False)
    limit = settings.limits.max_predict_rows
    for start in range(0, 200, limit):
        chosen = picks[start:start + limit]
        answer = client.post(f"/v1/checkpoints/{done['checkpoint_id']}/predict",
                             json={"inputs": X[chosen].tolist()}, headers=auth).get_json()
        assert answer["outputs"] == got[chosen].tolist()
        assert answer["classes"] == [int(lines[i][3]) for i in chosen]
    print(f"{ROWS} rows scored in {scored_s:.2f} s")
