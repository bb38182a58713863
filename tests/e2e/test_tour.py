"""The README's five-minute tour, run as a user would: the `weightsmith` CLI in subprocesses
against a live `weightsmith serve`, and the README's own NumPy inference snippet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.conftest import ROOT, Served

EXAMPLES = ROOT / "examples"


def cli(served: Served, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *argv], cwd=ROOT,
                          env=served.env(), capture_output=True, text=True, timeout=timeout)


def cli_json(served: Served, *argv: str) -> Any:
    done = cli(served, *argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def readme_snippet(marker: str = "numpy-inference") -> str:
    """The README's Python code block after `<!-- marker -->` ("inference with NumPy alone",
    or the onnxruntime one of "Exporting to ONNX")."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md lost its {marker} snippet"
    return match.group(1)


def test_tour_digits_mlp_submit_watch_predict_download_numpy_onnx(served: Served,
                                                                  tmp_path: Path) -> None:
    done = cli(served, "submit", str(EXAMPLES / "digits_mlp.json"), "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = re.search(r"submitted (job_\w+)", done.stdout).group(1)  # type: ignore[union-attr]
    spec = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    epochs = spec["training"]["epochs"]
    assert f"epoch {epochs}/{epochs}" in done.stdout and "succeeded" in done.stdout

    metrics = cli_json(served, "metrics", job_id)
    assert [m["epoch"] for m in metrics] == list(range(1, epochs + 1))
    assert max(m["val_accuracy"] for m in metrics) >= 0.9  # 8x8 digits, a 128-unit MLP

    listing = cli(served, "jobs")
    assert listing.returncode == 0 and job_id in listing.stdout

    checkpoints = cli_json(served, "checkpoints", job_id)
    best = next(c for c in checkpoints if c["kind"] == "best")
    weights = tmp_path / "digits.npz"
    assert cli(served, "download", best["id"], "-o", str(weights)).returncode == 0

    from core.datasets import load_builtin

    digits = load_builtin("digits")
    X = np.asarray(digits.X[:50], dtype=np.float64).reshape(50, -1)
    (tmp_path / "rows.json").write_text(json.dumps({"inputs": X.tolist()}))
    served_pred = cli_json(served, "predict", job_id, str(tmp_path / "rows.json"),
                           "--checkpoint", best["id"])

    scope: dict[str, Any] = {"X": X}
    exec(readme_snippet().replace("weights.npz", str(weights)), scope)
    np.testing.assert_allclose(scope["probabilities"], served_pred["outputs"],
                               rtol=1e-4, atol=1e-6)
    assert scope["labels"].tolist() == served_pred["classes"]
    assert np.mean(scope["labels"] == np.asarray(digits.y[:50])) >= 0.9

    model = tmp_path / "digits.onnx"
    done = cli(served, "export", best["id"], "--format", "onnx", "-o", str(model))
    assert done.returncode == 0, done.stderr
    scope = {"X": X}
    exec(readme_snippet("onnx-inference").replace("model.onnx", str(model)), scope)
    np.testing.assert_allclose(scope["outputs"], served_pred["outputs"], rtol=1e-5, atol=1e-6)
    assert scope["labels"].tolist() == served_pred["classes"]


def test_tour_regression_uploads_its_csv_and_learns(served: Served) -> None:
    done = cli(served, "submit", str(EXAMPLES / "regression.json"), "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uploaded" in done.stdout and "regression.csv" in done.stdout
    job_id = re.search(r"submitted (job_\w+)", done.stdout).group(1)  # type: ignore[union-attr]
    metrics = cli_json(served, "metrics", job_id)
    y = np.loadtxt(EXAMPLES / "regression.csv", delimiter=",", skiprows=1)[:, -1]
    # Far better than predicting the mean (whose MSE is the variance of y, about 3.8).
    assert min(m["val_loss"] for m in metrics) < 0.2 * float(y.var())


def test_tour_cancel_then_resume_to_the_end(served: Served, tmp_path: Path) -> None:
    spec = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    # Batches of one: an epoch takes 0.15-1 s, so 60 of them outlast the cancel by far.
    epochs = 60
    spec["name"] = "cancel-me"
    spec["training"].update(epochs=epochs, batch_size=1)
    (tmp_path / "long.json").write_text(json.dumps(spec))
    job = cli_json(served, "submit", str(tmp_path / "long.json"))
    with served.client() as client:
        for event in client.events(job["id"]):
            if event.event == "epoch":
                break
    cancelled = cli(served, "cancel", job["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    watched = cli(served, "watch", job["id"])
    assert watched.returncode == 1 and "cancelled" in watched.stdout  # exit 1: not succeeded
    with served.client() as client:
        stopped = client.get_job(job["id"])["progress"]["epoch"]
    assert 1 <= stopped < epochs

    resumed = cli(served, "resume", job["id"], "--watch")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    metrics = cli_json(served, "metrics", job["id"])
    assert [m["epoch"] for m in metrics] == list(range(1, epochs + 1))
