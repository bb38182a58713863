"""The learning-rate range test end to end: submitted through the client to a live
`weightsmith serve`, run by its real Celery worker (twice: same seed, same series), and drawn
on the dashboard's job page in headless Chromium (log-x chart, suggestion marked)."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, Served, wait_finished
from tests.e2e.test_dashboard import headless

SPEC: dict[str, Any] = {
    "name": "lr-range-digits",
    "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "optimizer": {"type": "sgd", "momentum": 0.9},
    "training": {"batch_size": 64, "seed": 1, "validation_split": 0.2},
}


def range_test(served: Served) -> tuple[dict[str, Any], dict[str, Any]]:
    with served.client() as client:
        job = client.lr_range_test(SPEC, min_lr=1e-5, max_lr=100.0, steps=80)
        done = wait_finished(client, job["id"])
        return done, client.lr_range_test_result(job["id"])


def test_a_range_test_runs_on_the_worker_and_the_job_page_charts_it(
    served: Served, tmp_path: Path
) -> None:
    job, result = range_test(served)
    assert job["status"] == "succeeded", job
    assert result["stop_reason"] in ("loss_exceeded", "loss_not_finite"), result["stop_reason"]
    series = result["series"]
    assert 20 < len(series) < 80
    smoothed = [p["smoothed_loss"] for p in series]
    assert all(s <= 4 * min(smoothed[:i + 1]) for i, s in enumerate(smoothed[:-1]))
    suggestion = result["suggestion"]
    assert suggestion is not None and 1e-5 < suggestion["lr"] < 100.0
    with served.client() as client:
        assert client.checkpoints(job["id"]) == []

    again_job, again = range_test(served)  # the same seed, another run of the worker
    assert again_job["id"] != job["id"]
    assert again["series"] == series and again["suggestion"] == suggestion

    url = f"{served.url}/jobs/{job['id']}#key={served.api_key}"
    dom = headless(url, tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert '<p id="error" class="error" role="alert" hidden="">' in dom
    assert '<section id="lr-range" class="card">' in dom  # shown: no `hidden` attribute
    # drawn up to the stop rule's line: 4x the lowest smoothed loss
    ceiling = 4 * result["min_smoothed_loss"]
    for curve, key in (("range-loss", "loss"), ("range-smoothed", "smoothed_loss")):
        match = re.search(rf'class="curve {curve}" data-points="(\d+)"', dom)
        assert match, curve
        assert int(match.group(1)) == sum(p[key] <= ceiling for p in series) > 20, curve
    assert 'class="mark suggested"' in dom
    label = re.search(r'class="mark-label"[^>]*>suggested ([^<]+)<', dom)
    assert label and float(label.group(1)) == pytest.approx(suggestion["lr"], rel=1e-3)
    # a log-x axis: one tick per power of ten between the first and last rate
    ticks = [float(t) for t in re.findall(r'class="x-tick">([^<]+)<', dom)]
    assert ticks[0] == 1e-5 and len(ticks) >= 3, ticks
    steps = [round(math.log10(b / a), 9) for a, b in itertools.pairwise(ticks)]
    assert set(steps) <= {1.0, 2.0}, ticks

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-lr-range.png"
    headless(url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,900",
             "--hide-scrollbars")
    assert shot.stat().st_size > 20_000  # a rendered page (docs/dashboard-lr-range.png)


def test_an_ordinary_job_page_shows_no_range_test(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    dom = headless(f"{served.url}/jobs/{finished_job['id']}#key={served.api_key}",
                   tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom and '<p id="error" class="error" role="alert" hidden="">' in dom
    assert '<section id="lr-range" class="card" hidden="">' in dom
