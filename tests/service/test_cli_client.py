"""The client commands of `weightsmith` over real HTTP: the app on a threaded Werkzeug server,
and a thread that runs queued jobs with the real worker code, as a Celery worker would."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from config.settings import Settings
from service.cli import main
from service.cli.client_view import fmt_bytes
from tests.service.test_client import blobs_csv, numpy_predict, tiny_spec


@pytest.fixture
def inline_worker(session_factory: Any, settings: Settings) -> Iterator[list[str]]:
    """Runs every queued job in a background thread; yields the ids it ran."""
    from store.models import Job
    from worker.runner import JobRunner

    ran: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            with session_factory() as s:
                queued = s.scalars(sa.select(Job.id).where(Job.status == "queued")).all()
            for job_id in queued:
                JobRunner(session_factory, settings, job_id, "cli-test-worker").run()
                ran.append(job_id)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield ran
    stop.set()
    thread.join(30)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, live_url: str, api_key: str) -> str:
    monkeypatch.setenv("WEIGHTSMITH_URL", live_url)
    monkeypatch.setenv("WEIGHTSMITH_API_KEY", api_key)
    return live_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_spec(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_submit_watch_metrics_checkpoints_download_predict(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "blobs.csv"
    data.write_bytes(blobs_csv())
    spec = write_spec(tmp_path, tiny_spec("replaced-by-upload", epochs=3))

    code, out, err = run(capsys, "submit", spec, "--dataset", str(data), "--watch")
    assert code == 0, err
    assert "uploaded" in out and "submitted job_" in out
    assert "epoch 3/3" in out and "succeeded" in out and "epochs_done" in out
    job_id = inline_worker[0]

    code, out, _ = run(capsys, "metrics", job_id, "--json")
    metrics = json.loads(out)
    assert code == 0 and [m["epoch"] for m in metrics] == [1, 2, 3]
    code, out, _ = run(capsys, "metrics", job_id)
    assert code == 0 and "val_loss" in out and f"{metrics[-1]['loss']:.4g}" in out

    code, out, _ = run(capsys, "jobs", "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [job_id]
    code, out, _ = run(capsys, "jobs")
    assert job_id in out and "succeeded" in out and "3/3" in out

    code, out, _ = run(capsys, "checkpoints", job_id, "--json")
    checkpoints = json.loads(out)
    assert code == 0 and checkpoints
    ckpt = checkpoints[-1]["id"]
    target = tmp_path / "w.npz"
    code, out, _ = run(capsys, "download", ckpt, "-o", str(target))
    assert code == 0 and f"wrote {target}" in out

    rows = np.array([[-1.5, -1.4], [1.6, 1.5]])
    inputs = tmp_path / "rows.csv"
    inputs.write_text("a,b\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    code, out, _ = run(capsys, "predict", ckpt, str(inputs), "--json")
    result = json.loads(out)
    assert code == 0 and result["classes"] == [0, 1]
    np.testing.assert_allclose(result["outputs"], numpy_predict(target.read_bytes(), rows),
                               rtol=1e-4, atol=1e-6)
    (tmp_path / "rows.json").write_text(json.dumps({"inputs": rows.tolist()}))
    code, out, _ = run(capsys, "predict", job_id, str(tmp_path / "rows.json"), "--json")
    answered = json.loads(out)["checkpoint_id"]  # what "best" resolved to
    assert answered in [c["id"] for c in checkpoints]
    code, out, _ = run(capsys, "predict", job_id, str(tmp_path / "rows.json"))
    assert code == 0 and "confidence" in out and f"answered by checkpoint {answered}" in out

    code, out, _ = run(capsys, "watch", job_id, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["id"] for e in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["data"]["status"] == "succeeded"


def test_exit_codes_usage_api_error_and_failed_job(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "submit", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    with pytest.raises(SystemExit) as usage:
        main(["download", "ckpt_x"])  # -o is required: argparse's usage error
    assert usage.value.code == 2
    capsys.readouterr()

    bad = tiny_spec("builtin:noisy_xor")
    bad["model"]["layers"][0]["units"] = -3
    code, _, err = run(capsys, "submit", write_spec(tmp_path, bad))
    assert code == 3
    assert "422" in err and "model.layers[0].units" in err

    code, _, err = run(capsys, "watch", "job_00000000000000000000000000")
    assert code == 3 and "404" in err

    # A learning rate that explodes: the job ends failed (diverged), and watch says so.
    wild = tiny_spec("builtin:noisy_xor", epochs=5)
    wild["model"]["layers"][0]["activation"] = "relu"  # unbounded: the loss overflows
    wild["optimizer"] = {"type": "sgd", "learning_rate": 1e30}
    code, out, err = run(capsys, "submit", write_spec(tmp_path, wild), "--watch")
    assert code == 1, out + err
    assert "failed" in out and "diverged" in out


def test_datasets_upload_and_list(env: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "blobs.csv"
    data.write_bytes(blobs_csv())
    code, out, _ = run(capsys, "datasets", "upload", str(data), "--name", "blobs", "--json")
    uploaded = json.loads(out)
    assert code == 0 and uploaded["name"] == "blobs" and uploaded["n_rows"] == 80
    code, out, _ = run(capsys, "datasets", "list", "--json")
    assert code == 0 and uploaded["id"] in [d["id"] for d in json.loads(out)]
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0 and uploaded["id"] in out and "blobs" in out
    assert "builtin:digits" in out and "builtin:spirals" in out  # what a spec can also name
    code, out, _ = run(capsys, "datasets", "list", "--uploaded", "--json")
    assert code == 0 and [d["id"] for d in json.loads(out)] == [uploaded["id"]]
    code, out, _ = run(capsys, "datasets", "delete", uploaded["id"])
    assert code == 0 and f"deleted {uploaded['id']}" in out
    code, _, err = run(capsys, "datasets", "delete", uploaded["id"])
    assert code == 3 and "404" in err


def test_validate_prints_shapes_and_parameter_counts(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_spec("builtin:noisy_xor", units=7))
    code, out, _ = run(capsys, "validate", spec, "--json")
    report = json.loads(out)
    # dense 2 -> 7 (2*7 + 7 = 21 parameters), dense 7 -> 2 (7*2 + 2 = 16)
    assert code == 0 and [layer["params"] for layer in report["layers"]] == [21, 16]
    assert report["total_params"] == 37
    code, out, _ = run(capsys, "validate", spec)
    assert code == 0 and "total" in out and "37" in out
    assert fmt_bytes(report["memory_bytes"]) in out  # the run's memory estimate
    assert (fmt_bytes(3), fmt_bytes(1536), fmt_bytes(5 * 2**30)) == ("3 B", "1.5 KiB", "5.0 GiB")


def test_read_inputs_accepts_npy(tmp_path: Path) -> None:
    from service.cli.client_commands import read_inputs

    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float64).reshape(3, 2))
    (tmp_path / "x.npy").write_bytes(buffer.getvalue())
    assert read_inputs(str(tmp_path / "x.npy")) == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


def test_compare_and_metrics_csv(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "blobs.csv"
    data.write_bytes(blobs_csv())
    code, out, err = run(capsys, "datasets", "upload", str(data), "--json")
    assert code == 0, err
    dataset = json.loads(out)["id"]
    ids = []
    for units in (4, 6):
        spec = tiny_spec(dataset)
        spec["model"]["layers"][0]["units"] = units
        code, out, err = run(capsys, "submit", write_spec(tmp_path, spec), "--json")
        assert code == 0, err
        ids.append(json.loads(out)["id"])
        assert run(capsys, "watch", ids[-1], "--json")[0] == 0

    code, out, _ = run(capsys, "compare", *ids, "--json")
    assert code == 0
    comparison = json.loads(out)
    assert comparison["spec_differences"] == [
        {"path": "model.layers[0].units", "values": {ids[0]: 4, ids[1]: 6}}]
    code, out, _ = run(capsys, "compare", *ids)
    assert code == 0 and "model.layers[0].units" in out and "best (epoch) / last" in out

    code, out, _ = run(capsys, "metrics", ids[0], "--csv", "-")
    assert code == 0
    assert out.splitlines()[0].startswith("epoch,")
    csv_file = tmp_path / "m.csv"
    assert run(capsys, "metrics", ids[1], "--csv", str(csv_file))[0] == 0
    assert csv_file.read_text().count("\n") == 1 + len(json.loads(
        run(capsys, "metrics", ids[1], "--json")[1]))


def finished_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The id of a tiny job submitted through the CLI (its data file uploaded) and watched."""
    (tmp_path / "blobs.csv").write_bytes(blobs_csv())
    code, out, err = run(capsys, "submit", write_spec(tmp_path, tiny_spec("blobs.csv")),
                         "--json")
    assert code == 0, err
    job: str = json.loads(out)["id"]
    assert run(capsys, "watch", job, "--json")[0] == 0
    return job


def test_models_register_alias_predict(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = finished_job(tmp_path, capsys)
    assert run(capsys, "models", "create", "blobs")[0] == 0
    code, out, _ = run(capsys, "models", "register", "blobs", job, "--json")
    assert code == 0 and json.loads(out)["version"] == 1
    code, out, _ = run(capsys, "models", "alias", "blobs", "champion", "1", "--json")
    assert code == 0 and json.loads(out)["aliases"] == {"champion": 1}
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"inputs": [[0.0, 0.0]]}))
    code, out, _ = run(capsys, "models", "predict", "blobs", str(rows), "--alias", "champion",
                       "--json")
    assert code == 0 and json.loads(out)["model"] == {"name": "blobs", "version": 1}
    code, out, _ = run(capsys, "models", "show", "blobs")
    assert code == 0 and "champion" in out and "v1" in out
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "champion=v1" in out
    assert run(capsys, "models", "alias", "blobs", "champion")[0] == 0
    code, _, err = run(capsys, "models", "show", "nope")
    assert code == 3 and "not found" in err


def test_fork_reproduce_and_manifest(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = finished_job(tmp_path, capsys)
    code, out, err = run(capsys, "fork", job, "--reset", "--overrides",
                         '{"training": {"epochs": 2}}', "--watch")
    assert code == 0, err
    code, out, _ = run(capsys, "reproduce", job, "--watch", "--json")
    verdict = json.loads(out[out.rindex("\n{") + 1:])  # after the event lines
    assert code == 0 and verdict["identical"] is True
    code, out, _ = run(capsys, "manifest", job)
    assert code == 0 and len(json.loads(out)["spec_sha256"]) == 64


def test_a_cli_error_that_cannot_reach_the_server_names_the_url_it_tried(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.worker.test_serve import free_port

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("WEIGHTSMITH_URL", closed)  # not --url: the environment's URL is named
    code, _, err = run(capsys, "jobs")
    assert code == 3 and f"cannot reach {closed}/v1/jobs" in err
    code, _, err = run(capsys, "metrics", "job_x", "--url", closed + "/")
    assert code == 3 and f"cannot reach {closed}/v1/jobs/job_x/metrics" in err


def test_failure_reason_shows_beside_stop_reason_in_watch_and_jobs(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wild = tiny_spec("builtin:noisy_xor", epochs=5)
    wild["model"]["layers"][0]["activation"] = "relu"  # unbounded: the loss overflows
    wild["optimizer"] = {"type": "sgd", "learning_rate": 1e30}
    code, out, err = run(capsys, "submit", write_spec(tmp_path, wild), "--watch")
    assert code == 1, out + err
    job_id = inline_worker[0]
    code, out, _ = run(capsys, "jobs", "--json")
    job = json.loads(out)[0]
    assert (job["status"], job["stop_reason"]) == ("failed", "diverged")
    assert "lower the learning rate" in job["failure_reason"]  # what the user acts on
    summary = f"{job_id} failed diverged; {job['failure_reason']}"
    code, out, _ = run(capsys, "watch", job_id)
    assert code == 1 and summary in " ".join(out.split())
    code, out, _ = run(capsys, "jobs")
    assert code == 0 and "diverged" in out and "lower the learning rate" in out


def test_watch_counts_from_started_at_and_an_early_stopped_job_reads_complete(
    env: str, inline_worker: list[str], session_factory: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import timedelta

    from store.models import Job

    spec = tiny_spec("builtin:noisy_xor", epochs=10)
    spec["optimizer"] = {"type": "sgd", "learning_rate": 1e-30}  # steps vanish: no progress
    spec["training"]["early_stopping"] = {"monitor": "val_loss", "patience": 1}
    code, out, err = run(capsys, "submit", write_spec(tmp_path, spec), "--watch")
    assert code == 0, out + err
    job_id = inline_worker[0]
    assert "early_stopping" in out and "epoch 2/10" in out and "100%" in out
    # Elapsed is the server's finished_at - started_at, however long ago that was.
    with session_factory.begin() as s:
        job = s.get(Job, job_id)
        job.started_at = job.finished_at - timedelta(hours=1, minutes=2, seconds=3)
    code, out, _ = run(capsys, "watch", job_id)
    assert code == 0 and "1:02:03 elapsed" in out and "100%" in out


def test_validate_runs_submit_s_checks_on_a_dataset_file_beside_the_spec(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blobs.csv").write_bytes(blobs_csv())
    spec = write_spec(tmp_path, tiny_spec("blobs.csv"))  # a file beside the spec
    code, out, err = run(capsys, "validate", spec, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["n_samples"] == 80 and report["dataset_id"].startswith("ds_")
    # --dataset: the same bytes again are the same dataset (nothing stored twice).
    other = write_spec(tmp_path, tiny_spec("builtin:xor"))
    code, out, _ = run(capsys, "validate", other, "--dataset", str(tmp_path / "blobs.csv"),
                       "--json")
    assert code == 0 and json.loads(out)["dataset_id"] == report["dataset_id"]
    code, out, _ = run(capsys, "validate", other, "--dataset", str(tmp_path / "blobs.csv"))
    assert code == 0 and f"dataset {report['dataset_id']}: 80 rows" in out
    # Labels against the output units, as submit checks them: 2 units, labels 0, 1 and 2.
    from tests.service.helpers import blobs, csv_bytes

    (tmp_path / "three.csv").write_bytes(csv_bytes(*blobs(30, 2, 3)))
    code, out, err = run(capsys, "validate", write_spec(tmp_path, tiny_spec("three.csv")))
    assert code == 3 and "422" in err
    assert "dataset: y row 3: label 2 is outside 0..1" in " ".join(err.split())
    code, out, _ = run(capsys, "datasets", "list", "--uploaded", "--json")
    assert len(json.loads(out)) == 2  # blobs.csv once, three.csv


def test_delete_job_and_delete_checkpoint_free_storage(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "submit", write_spec(tmp_path, tiny_spec("builtin:noisy_xor")),
                       "--watch")
    assert code == 0, err
    job_id = inline_worker[0]
    code, out, _ = run(capsys, "checkpoints", job_id, "--json")
    first = json.loads(out)[0]["id"]
    code, out, _ = run(capsys, "delete-checkpoint", first)
    assert code == 0 and f"deleted {first}" in out
    code, out, _ = run(capsys, "checkpoints", job_id, "--json")
    assert first not in [c["id"] for c in json.loads(out)]
    code, out, _ = run(capsys, "delete-job", job_id, "--json")
    assert code == 0 and json.loads(out) == {"deleted": job_id}
    code, _, err = run(capsys, "delete-job", job_id)
    assert code == 3 and "404" in err


def test_lr_range_test_waits_and_prints_the_series_and_the_suggestion(
    env: str, inline_worker: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, {**tiny_spec("builtin:digits"), "model": {"layers": [
        {"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 10}]}})
    code, out, err = run(capsys, "lr-range-test", spec, "--min-lr", "1e-4", "--max-lr", "1e3",
                         "--steps", "50", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["job_id"] in inline_worker
    assert (result["min_lr"], result["max_lr"], result["steps"]) == (1e-4, 1e3, 50)
    assert result["stop_reason"] in ("loss_exceeded", "loss_not_finite", "steps_done")
    assert result["series"][0]["lr"] == 1e-4 and result["suggestion"] is not None

    code, out, err = run(capsys, "lr-range-test-result", result["job_id"])
    assert code == 0, err
    suggested = result["suggestion"]
    assert f"suggested learning rate: {suggested['lr']:.4g}" in " ".join(out.split())
    assert "<- suggested" in out

    code, out, err = run(capsys, "lr-range-test", spec, "--min-lr", "1", "--max-lr", "0.1")
    assert code == 3 and "max_lr" in err
