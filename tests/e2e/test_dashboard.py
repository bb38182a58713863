"""The dashboard in headless Chromium against a live `weightsmith serve` with a finished job:
the DOM after the scripts ran holds the curves, the checkpoints and the weight heatmaps."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, Served

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    message = "Chromium is not installed (apt-get install chromium): dashboard test skipped"
    if os.environ.get("WEIGHTSMITH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and WEIGHTSMITH_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(message)


def headless(url: str, profile: Path, *extra: str) -> str:
    """Run Chromium on `url` with a virtual-time budget; returns stdout (the DOM if asked)."""
    argv = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--virtual-time-budget=15000", *extra, url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_job_page_draws_curves_checkpoints_and_weight_heatmaps(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    job_id = finished_job["id"]
    url = f"{served.url}/jobs/{job_id}#key={served.api_key}"
    dom = headless(url, tmp_path / "profile", "--dump-dom")

    assert 'data-ready="1"' in dom, dom[-3000:]
    assert '<p id="error" class="error" role="alert" hidden="">' in dom  # no error shown
    epochs = finished_job["progress"]["epochs"]
    for curve in ("train-loss", "val-loss", "train-accuracy", "val-accuracy"):
        match = re.search(rf'<path d="M[^"]+" class="curve {curve}" data-points="(\d+)"', dom)
        assert match, f"no {curve} curve"
        assert int(match.group(1)) == epochs

    with served.client() as client:
        checkpoints = client.checkpoints(job_id)
    for c in checkpoints:
        assert f'data-checkpoint-id="{c["id"]}"' in dom
    assert dom.count('class="download"') == len(checkpoints)

    # The tiny MLP has weights 0.weight (64 x 16) and 1.weight (16 x 10), one cell per entry.
    assert 'data-layer="0.weight"' in dom and 'data-layer="1.weight"' in dom
    assert dom.count('class="heat-cell"') == 64 * 16 + 16 * 10
    assert dom.count('class="hist-bar"') == 2 * 30

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    headless(url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1500",
             "--hide-scrollbars")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_job_list_shows_the_job_with_its_status(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    dom = headless(f"{served.url}/#key={served.api_key}", tmp_path / "profile", "--dump-dom")
    row = re.search(rf'<tr data-job-id="{finished_job["id"]}">(.*?)</tr>', dom, re.S)
    assert row, dom[-3000:]
    assert 'class="status status-succeeded"' in row.group(1)
    epochs = finished_job["progress"]["epochs"]
    assert f"{epochs}/{epochs} (100%)" in row.group(1)


def test_without_a_key_the_page_asks_for_one(served: Served, tmp_path: Path) -> None:
    dom = headless(f"{served.url}/", tmp_path / "profile", "--dump-dom")
    assert '<form id="key-form" class="card">' in dom  # shown: no `hidden` attribute
    assert "<tbody></tbody>" in dom  # nothing was fetched without a key


def test_job_page_follows_a_running_job_through_the_event_stream(
    served: Served, tmp_path: Path
) -> None:
    from tests.e2e.conftest import TINY_DIGITS, wait_finished

    # Batches of one and many epochs: the job is still running while the page watches it.
    spec = {**TINY_DIGITS, "name": "dashboard-live",
            "training": {**TINY_DIGITS["training"], "epochs": 200, "batch_size": 1}}
    with served.client() as client:
        job = client.submit(spec)
        try:
            for event in client.events(job["id"]):
                if event.event == "epoch":
                    break
            dom = headless(f"{served.url}/jobs/{job['id']}#key={served.api_key}",
                           tmp_path / "profile", "--dump-dom")
        finally:
            client.cancel(job["id"])
            wait_finished(client, job["id"])
    streamed = re.search(r'data-streamed-epochs="(\d+)"', dom)
    status = re.search(r'id="job-status">(\w+)<', dom)
    assert streamed and int(streamed.group(1)) >= 1, (status and status.group(1), dom[:3000])
    points = re.search(r'class="curve train-loss" data-points="(\d+)"', dom)
    assert points and int(points.group(1)) >= 1 + int(streamed.group(1)) - 1
    assert 'id="job-status">running<' in dom
