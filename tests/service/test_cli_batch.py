"""`weightsmith batch-predict` and the client's batch methods over real HTTP, with a thread
that scores queued batches with the worker's scorer, as a Celery worker would."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from config.settings import Settings
from tests.service.test_cli_client import (  # noqa: F401 (fixtures)
    env,
    finished_job,
    inline_worker,
    run,
)


@pytest.fixture
def batch_worker(session_factory: Any, settings: Settings) -> Iterator[list[str]]:
    from store.models import BatchPrediction
    from worker.batch_scoring import score

    ran: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            with session_factory() as s:
                queued = s.scalars(sa.select(BatchPrediction.id)
                                   .where(BatchPrediction.status == "queued")).all()
            for batch_id in queued:
                score(session_factory, settings, batch_id, "cli-batch-worker")
                ran.append(batch_id)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield ran
    stop.set()
    thread.join(30)


@pytest.mark.usefixtures("env", "inline_worker", "batch_worker")
def test_batch_predict_by_model_alias_watches_and_writes_the_result(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from service.client import WeightsmithClient

    job = finished_job(tmp_path, capsys)
    assert run(capsys, "models", "create", "blobs")[0] == 0
    assert run(capsys, "models", "register", "blobs", job)[0] == 0
    assert run(capsys, "models", "alias", "blobs", "champion", "1")[0] == 0
    with WeightsmithClient() as client:
        dataset = client.get_job(job)["dataset_id"]
        outputs = np.asarray(client.predict(job, [[0.0, 0.0]])["outputs"])
    out_file = tmp_path / "scores.csv"
    code, out, err = run(capsys, "batch-predict", "--model", "blobs", "--alias", "champion",
                         dataset, "-o", str(out_file), "--watch")
    assert code == 0, err
    assert "succeeded" in out and "rows" in out
    lines = list(csv.reader(out_file.open()))
    with WeightsmithClient() as client:
        total = client.get_dataset(dataset)["n_rows"]
    assert len(lines) == total and outputs.shape[1] + 1 == len(lines[0])

    code, out, _ = run(capsys, "batch-predict", "--job", job, dataset, "--format", "npy",
                       "-o", str(tmp_path / "scores.npy"), "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    scores = np.load(tmp_path / "scores.npy")
    np.testing.assert_array_equal(scores, np.array([[float(v) for v in ln[:-1]]
                                                    for ln in lines]))
    code, _, err = run(capsys, "batch-predict", "--model", "nope", dataset)
    assert code == 3 and "not found" in err
