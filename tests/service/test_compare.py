"""`GET /v1/jobs:compare` and `GET /v1/jobs/{id}/metrics.csv` on real trained jobs."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask.testing import FlaskClient

from config.settings import Settings
from tests.service.helpers import assert_problem, mlp_spec, upload_csv
from worker.runner import JobRunner


def _trained(client: FlaskClient, auth: dict[str, str], session_factory: Any,
             settings: Settings, spec: dict[str, Any]) -> dict[str, Any]:
    job = client.post("/v1/jobs", json=spec, headers=auth).get_json()
    assert JobRunner(session_factory, settings, job["id"], "compare-worker").run() == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()


def test_compare_lists_the_differing_paths_and_each_jobs_best_and_last(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    dataset = upload_csv(client, auth)["id"]
    a = _trained(client, auth, session_factory, settings, mlp_spec(dataset, hidden=8, epochs=3))
    spec_b = mlp_spec(dataset, hidden=16, epochs=3)
    spec_b["optimizer"] = {"type": "adam", "learning_rate": 0.01}
    b = _trained(client, auth, session_factory, settings, spec_b)

    response = client.get(f"/v1/jobs:compare?ids={a['id']},{b['id']}", headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert [j["id"] for j in body["jobs"]] == [a["id"], b["id"]]
    assert {d["path"]: d["values"] for d in body["spec_differences"]} == {
        "model.layers[0].units": {a["id"]: 8, b["id"]: 16},
        "optimizer.learning_rate": {a["id"]: 0.001, b["id"]: 0.01},
    }
    metrics_a = client.get(f"/v1/jobs/{a['id']}/metrics", headers=auth).get_json()["items"]
    val_losses = [row["val_loss"] for row in metrics_a]
    best = min(val_losses)
    assert body["metrics"]["val_loss"][a["id"]] == {
        "best": best, "best_epoch": val_losses.index(best) + 1,
        "last": val_losses[-1], "last_epoch": 3}
    assert body["metrics"]["lr"][b["id"]]["last"] == 0.01
    assert body["metrics"]["lr"][b["id"]]["best"] is None


def test_compare_is_tenant_scoped_and_checks_its_ids(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        seeded: dict[str, str]) -> None:
    ours = seeded["job_id"]
    seeded_auth = {"Authorization": f"Bearer {seeded['api_key']}"}
    dataset = upload_csv(client, auth)["id"]
    mine = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()["id"]
    problem = assert_problem(
        client.get(f"/v1/jobs:compare?ids={mine},{ours}", headers=auth), 404)
    assert ours in problem["detail"]
    assert_problem(client.get(f"/v1/jobs:compare?ids={ours}", headers=seeded_auth), 422)
    problem = assert_problem(
        client.get(f"/v1/jobs:compare?ids={ours},{ours}", headers=seeded_auth), 422)
    assert problem["errors"][0]["field"] == "ids"


def test_metrics_csv_has_a_row_per_epoch_and_a_column_per_metric(
        client: FlaskClient, seeded: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {seeded['api_key']}"}
    job = seeded["job_id"]
    response = client.get(f"/v1/jobs/{job}/metrics.csv", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    history = client.get(f"/v1/jobs/{job}/metrics", headers=auth).get_json()["items"]
    assert [int(r["epoch"]) for r in rows] == [h["epoch"] for h in history] == [1, 2]
    assert list(rows[0]) == ["epoch", *sorted(set(history[0]) - {"epoch"})]
    for row, item in zip(rows, history, strict=True):
        for name, value in item.items():
            assert float(row[name]) == value
    assert_problem(client.get("/v1/jobs/job_nope/metrics.csv", headers=auth), 404)
