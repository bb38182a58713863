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


def test_compare_page_overlays_the_jobs_and_lists_what_differs(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    from tests.e2e.conftest import TINY_DIGITS, wait_finished

    other_spec = {**TINY_DIGITS, "optimizer": {"type": "adam", "learning_rate": 0.003}}
    with served.client() as client:
        other = wait_finished(client, client.submit(other_spec)["id"])
    ids = f"{finished_job['id']},{other['id']}"
    dom = headless(f"{served.url}/compare?ids={ids}#key={served.api_key}",
                   tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    epochs = finished_job["progress"]["epochs"]
    for run in ("run-0", "run-1"):
        assert re.search(rf'class="curve {run}" data-points="{epochs}"', dom), run
    assert 'data-path="optimizer.learning_rate"' in dom
    assert dom.count('class="diff-row"') == 1  # nothing else differs
    assert dom.count('class="metric-row"') >= 4  # loss, accuracy, val_loss, val_accuracy, ...

    index = headless(f"{served.url}/#key={served.api_key}", tmp_path / "profile-index",
                     "--dump-dom")
    assert index.count('class="pick"') >= 2 and 'id="compare"' in index


def test_model_pages_show_versions_aliases_and_their_history(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    with served.client() as client:
        client.create_model("digits", "the tiny MLP")
        client.register_version("digits", job_id=finished_job["id"])
        client.register_version("digits", job_id=finished_job["id"], checkpoint="latest")
        client.set_alias("digits", "champion", 1)
        client.set_alias("digits", "champion", 2)
    listing = headless(f"{served.url}/models#key={served.api_key}", tmp_path / "profile",
                       "--dump-dom")
    assert 'data-model="digits"' in listing and "champion → v2" in listing

    dom = headless(f"{served.url}/models/digits#key={served.api_key}",
                   tmp_path / "profile-model", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert 'data-version="1"' in dom and 'data-version="2"' in dom
    history = re.search(r'data-alias="champion">(.*?)</table>', dom, re.S)
    assert history and history.group(1).count("<tr>") == 3  # the header and two spans
    assert ">now<" in history.group(1)
    assert dom.count(">model.onnx<") == 2 and dom.count(">weights.npz<") == 2


def test_a_fork_shows_its_parent_and_every_checkpoint_can_be_forked(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    from tests.e2e.conftest import wait_finished

    with served.client() as client:
        child = client.fork(finished_job["id"], optimizer_state="reset",
                            overrides={"training": {"epochs": 1}})
        wait_finished(client, child["id"])
        checkpoints = client.checkpoints(finished_job["id"])
    parent_page = headless(f"{served.url}/jobs/{finished_job['id']}#key={served.api_key}",
                           tmp_path / "profile", "--dump-dom")
    assert parent_page.count('class="fork"') == len(checkpoints)
    dom = headless(f"{served.url}/jobs/{child['id']}#key={served.api_key}",
                   tmp_path / "profile-child", "--dump-dom")
    assert "forked from" in dom and f'href="/jobs/{finished_job["id"]}"' in dom


def test_job_page_marks_the_best_epoch_and_fits_its_panels_to_the_model(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    from tests.e2e.conftest import wait_finished

    dom = headless(f"{served.url}/jobs/{finished_job['id']}#key={served.api_key}",
                   tmp_path / "profile", "--dump-dom")
    assert 'class="mark best"' in dom and ">best<" in dom
    epochs = finished_job["progress"]["epochs"]
    assert re.search(rf'class="curve lr" data-points="{epochs}"', dom)
    # a constant rate (adam at 0.01) sits mid-axis between round ticks, not flat on 0
    lr_chart = dom[dom.index('id="lr-chart"'):]
    lr_chart = lr_chart[:lr_chart.index("</svg>")]
    assert re.findall(r'text-anchor="end">([^<]+)<', lr_chart)[:3] == ["5.0e-3", "0.01", "0.015"]
    assert dom.count('class="dot"') >= 5 * epochs  # loss x2, accuracy x2, lr: hover values
    assert "&quot;optimizer&quot;" in dom or '"optimizer"' in dom  # the spec is on the page
    assert '<figure id="accuracy-figure" class="card">' in dom  # shown: a classifier

    cnn = {"name": "tiny-cnn", "dataset": "builtin:digits_images",
           "model": {"layers": [{"type": "conv2d", "filters": 3, "kernel_size": 3},
                                {"type": "flatten"}, {"type": "dense", "units": 10}]},
           "training": {"epochs": 1, "batch_size": 128}}
    regression = {"name": "tiny-regression", "dataset": "builtin:xor", "loss": {"type": "mse"},
                  "model": {"layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                                       {"type": "dense", "units": 1}]},
                  "training": {"epochs": 2, "batch_size": "full", "validation_split": 0}}
    with served.client() as client:
        done = [wait_finished(client, client.submit(spec)["id"]) for spec in (cnn, regression)]
    conv_page = headless(f"{served.url}/jobs/{done[0]['id']}#key={served.api_key}",
                         tmp_path / "profile-cnn", "--dump-dom")
    assert conv_page.count('class="kernel"') == 3 * 1  # 3 filters x 1 input channel
    assert conv_page.count('class="heat-cell"') >= 3 * 9
    regression_page = headless(f"{served.url}/jobs/{done[1]['id']}#key={served.api_key}",
                               tmp_path / "profile-regression", "--dump-dom")
    assert '<figure id="accuracy-figure" class="card" hidden="">' in regression_page


def test_webhooks_page_lists_each_delivery_attempt(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    import time


    with served.client() as client:
        hook = client._json("POST", "/v1/webhooks", json={
            "url": "http://127.0.0.1:9/nothing-listens-here", "events": ["job.failed"]})
        client._json("POST", f"/v1/webhooks/{hook['id']}/ping")
        deadline = time.monotonic() + 60
        while not client._json("GET", f"/v1/webhooks/{hook['id']}/deliveries")["items"]:
            assert time.monotonic() < deadline, "the worker never tried the delivery"
            time.sleep(0.5)
    dom = headless(f"{served.url}/webhooks#key={served.api_key}", tmp_path / "profile",
                   "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert f'data-webhook="{hook["id"]}"' in dom
    assert 'class="delivery delivery-pending"' in dom  # refused: retried later
    assert "ConnectError" in dom


def test_an_early_stopped_job_reads_complete_and_a_failure_reason_is_shown(
    served: Served, tmp_path: Path
) -> None:
    from tests.e2e.conftest import TINY_DIGITS, wait_finished

    early = {**TINY_DIGITS, "name": "dashboard-early",
             "optimizer": {"type": "sgd", "learning_rate": 1e-30},  # no progress: stops early
             "training": {**TINY_DIGITS["training"], "epochs": 20,
                          "early_stopping": {"monitor": "val_loss", "patience": 1}}}
    wild = {**TINY_DIGITS, "name": "dashboard-diverged",
            "optimizer": {"type": "sgd", "learning_rate": 1e30}}
    with served.client() as client:
        stopped = wait_finished(client, client.submit(early)["id"])
        failed = wait_finished(client, client.submit(wild)["id"])
    assert (stopped["status"], stopped["stop_reason"]) == ("succeeded", "early_stopping")
    assert stopped["progress"]["epoch"] < 20
    assert (failed["stop_reason"], failed["status"]) == ("diverged", "failed")
    assert failed["failure_reason"]

    dom = headless(f"{served.url}/#key={served.api_key}", tmp_path / "profile", "--dump-dom")
    row = re.search(rf'<tr data-job-id="{stopped["id"]}">(.*?)</tr>', dom, re.S)
    assert row and f'{stopped["progress"]["epoch"]}/20 (100%)' in row.group(1)
    row = re.search(rf'<tr data-job-id="{failed["id"]}">(.*?)</tr>', dom, re.S)
    assert row and f'diverged; {failed["failure_reason"]}' in row.group(1)

    page = headless(f"{served.url}/jobs/{stopped['id']}#key={served.api_key}",
                    tmp_path / "profile-early", "--dump-dom")
    assert 'id="job-progress-bar" style="width: 100%;"' in page
    page = headless(f"{served.url}/jobs/{failed['id']}#key={served.api_key}",
                    tmp_path / "profile-failed", "--dump-dom")
    summary = re.search(r'<p id="job-summary">(.*?)</p>', page, re.S)
    assert summary and f'diverged; {failed["failure_reason"]}' in summary.group(1)


def test_sweep_page_shows_counts_best_trials_scatters_and_epochs_per_trial(
    served: Served, finished_sweep: dict[str, Any], tmp_path: Path
) -> None:
    sweep, trials = finished_sweep["sweep"], finished_sweep["trials"]
    url = f"{served.url}/sweeps/{sweep['id']}#key={served.api_key}"
    dom = headless(url, tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert '<p id="error" class="error" role="alert" hidden="">' in dom
    assert 'id="sweep-status">succeeded<' in dom

    # status counts and the best so far, as the API reports them
    for name, count in sweep["trials"].items():
        assert f'data-count="{name}"><b>{count}</b>' in dom, name
    best = sweep["best"]
    assert f'<a href="/jobs/{best["job_id"]}" id="best-trial">trial {best["trial"]}</a>' in dom

    # the trials table: one row per trial, each linking to its job
    assert dom.count('class="trial-row"') == len(trials) == 6
    for t in trials:
        assert f'class="trial-job">{t["job_id"]}</a>' in dom
        assert f'href="/jobs/{t["job_id"]}"' in dom

    # the metric against each parameter: a chart per parameter, a point per trial that set it
    space = sweep["spec"]["space"]
    for param in space:
        chart = re.search(rf'<svg [^>]*data-param="{re.escape(param)}"[^>]*>(.*?)</svg>', dom, re.S)
        assert chart, param
        having = [t for t in trials if param in t["params"] and t["best"]]
        assert chart.group(1).count('class="point point-') == len(having), param
    assert "optimizer.learning_rate (log)" in dom  # a log_uniform parameter on a log axis
    assert '>"sgd"<' in dom and '>"adam"<' in dom  # a choice of strings: one tick each

    # epochs per trial: each bar is the trial's epochs; the rung reports from the event stream
    reports = [e.data for e in finished_sweep["events"] if e.event == "rung_reported"]
    assert f'data-rung-reports="{len(reports)}"' in dom
    for t in trials:
        assert f'data-trial="{t["index"]}" data-epochs="{t["epochs_run"]}"' in dom
    pruned = [r for r in reports if not r["continues"]]
    assert pruned, "the sweep pruned no trial: nothing to show"
    assert dom.count('class="rung-pruned"') == len(pruned)
    assert dom.count('class="rung-pass"') == len(reports) - len(pruned)
    for r in pruned:
        [t] = [t for t in trials if t["index"] == r["trial"]]
        assert t["status"] == "pruned" and t["epochs_run"] == r["rung"]
    labels = re.findall(r"<text [^>]*>pruned at (\d+)</text>", dom)
    assert sorted(map(int, labels)) == sorted(r["rung"] for r in pruned)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-sweep.png"
    headless(url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,1300",
             "--hide-scrollbars")
    assert shot.stat().st_size > 20_000


def test_sweeps_are_in_the_navigation_and_a_trial_links_back_to_its_sweep(
    served: Served, finished_sweep: dict[str, Any], tmp_path: Path
) -> None:
    sweep = finished_sweep["sweep"]
    index = headless(f"{served.url}/#key={served.api_key}", tmp_path / "profile", "--dump-dom")
    assert '<a href="/sweeps">Sweeps</a>' in index
    listing = headless(f"{served.url}/sweeps#key={served.api_key}", tmp_path / "profile-list",
                       "--dump-dom")
    row = re.search(rf'<tr data-sweep-id="{sweep["id"]}">(.*?)</tr>', listing, re.S)
    assert row, listing[-3000:]
    assert f'href="/sweeps/{sweep["id"]}"' in row.group(1)
    assert 'class="status status-succeeded"' in row.group(1)
    assert f'{sweep["epochs_run"]} / {sweep["epochs_budget"]}' in row.group(1)
    trial = finished_sweep["trials"][0]
    page = headless(f"{served.url}/jobs/{trial['job_id']}#key={served.api_key}",
                    tmp_path / "profile-trial", "--dump-dom")
    assert f'a trial of sweep <a href="/sweeps/{sweep["id"]}"' in page


def test_sweep_page_follows_a_running_sweep_through_its_event_stream(
    served: Served, tmp_path: Path
) -> None:
    from tests.e2e.conftest import TINY_SWEEP

    # Batches of one row and many epochs: the trials are still running while the page looks.
    body = {**TINY_SWEEP, "name": "dashboard-live-sweep",
            "base": {**TINY_SWEEP["base"],
                     "training": {**TINY_SWEEP["base"]["training"], "epochs": 200,
                                  "batch_size": 1}}}
    with served.client() as client:
        sweep = client.submit_sweep(body)
        try:
            for event in client.sweep_events(sweep["id"]):
                if event.event == "rung_reported":
                    break
            dom = headless(f"{served.url}/sweeps/{sweep['id']}#key={served.api_key}",
                           tmp_path / "profile", "--dump-dom")
        finally:
            client.cancel_sweep(sweep["id"])
            for _ in client.sweep_events(sweep["id"]):
                pass
    assert 'id="sweep-status">running<' in dom, dom[:3000]
    reports = re.search(r'data-rung-reports="(\d+)"', dom)
    assert reports and int(reports.group(1)) >= 1  # streamed while the sweep ran
    assert 'class="rung-pass"' in dom or 'class="rung-pruned"' in dom


def test_job_page_draws_layer_diagnostics_and_their_warnings(
    served: Served, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    from tests.e2e.conftest import TINY_DIGITS, wait_finished

    # The finished job: one curve per layer in each chart, no warning.
    dom = headless(f"{served.url}/jobs/{finished_job['id']}#key={served.api_key}",
                   tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert '<section id="diagnostics" class="card">' in dom  # shown: no `hidden`
    epochs = finished_job["progress"]["epochs"]
    for chart in ("diag-weight-norm", "diag-grad-norm", "diag-update-ratio"):
        panel = re.search(rf'<div id="{chart}" class="chart">(.*?)</div>', dom, re.S)
        assert panel, chart
        curves = re.findall(r'class="curve layer-series s\d" data-points="(\d+)"', panel.group(1))
        assert curves == [str(epochs)] * 2, (chart, curves)  # both dense layers
    dead = re.search(r'<div id="diag-dead-fraction" class="chart">(.*?)</div>', dom, re.S)
    assert dead and re.findall(r'class="curve layer-series s0" data-points="(\d+)"',
                               dead.group(1)) == [str(epochs)]  # the ReLU layer only
    ratio = re.search(r'<div id="diag-update-ratio" class="chart">(.*?)</div>', dom, re.S)
    assert ratio and ratio.group(1).count('class="hline"') == 2  # the healthy band's edges
    # Adam at 0.01 moves this small net by more than 10% an epoch at first: the rule says so.
    with served.client() as client:
        raised = client.diagnostics(finished_job["id"])["warnings"]
    assert {w["kind"] for w in raised} == {"update_ratio_high"}
    assert dom.count('class="diag-warning update_ratio_high"') == len(raised)

    # Dead units (a bias of -100) and updates too small to matter: warnings on the page.
    stuck = {**TINY_DIGITS, "name": "dashboard-stuck",
             "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu",
                                   "bias_init": {"type": "constant", "value": -100.0}},
                                  {"type": "dense", "units": 10}]},
             "optimizer": {"type": "sgd", "learning_rate": 1e-9}}
    with served.client() as client:
        job = wait_finished(client, client.submit(stuck)["id"])
        kinds = {(w["layer"], w["kind"]) for w in client.diagnostics(job["id"])["warnings"]}
    assert kinds == {(0, "dead_units"), (0, "update_ratio_low"), (1, "update_ratio_low")}
    url = f"{served.url}/jobs/{job['id']}#key={served.api_key}"
    page = headless(url, tmp_path / "profile-stuck", "--dump-dom")
    assert 'data-ready="1"' in page, page[-3000:]
    assert page.count('class="diag-warning ') == 3
    assert 'data-kind="dead_units"' in page and "dead ReLUs" in page
    assert re.search(r'id="warning-count">⚠ 3 warnings<', page)
    # lr 1e-9 leaves float32 weights exactly unchanged: a ratio of 0, said in words.
    assert "every value is 0: the weights did not change" in page

    # Switched off: the section says so, with no empty charts.
    off = {**TINY_DIGITS, "name": "dashboard-no-diagnostics",
           "training": {**TINY_DIGITS["training"], "epochs": 1, "diagnostics": False}}
    with served.client() as client:
        quiet = wait_finished(client, client.submit(off)["id"])
    page_off = headless(f"{served.url}/jobs/{quiet['id']}#key={served.api_key}",
                        tmp_path / "profile-off", "--dump-dom")
    assert 'data-ready="1"' in page_off, page_off[-3000:]
    assert '<section id="diagnostics" class="card">' in page_off
    assert '<p id="diag-off" class="hint">' in page_off  # shown
    assert '<div id="diag-charts" class="charts" hidden="">' in page_off

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-diagnostics.png"
    headless(url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000",
             "--hide-scrollbars")
    assert shot.stat().st_size > 20_000
