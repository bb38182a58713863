"""A live `weightsmith serve` (API, Celery worker and beat as real processes, embedded SQLite
and filesystem broker in a temporary data dir) shared by the end-to-end tests, and one small
finished job to look at."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.client import WeightsmithClient
from store.statuses import TERMINAL_STATUSES

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Served:
    url: str
    api_key: str
    data_dir: Path
    log: Path

    def client(self) -> WeightsmithClient:
        return WeightsmithClient(self.url, self.api_key, timeout=60.0)

    def env(self) -> dict[str, str]:
        return dict(os.environ, WEIGHTSMITH_URL=self.url, WEIGHTSMITH_API_KEY=self.api_key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, key_file: Path, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weightsmith serve exited with {proc.returncode}:\n"
                               + log.read_text(errors="replace")[-4000:])
        try:
            if key_file.exists() and httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return key_file.read_text().strip()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("weightsmith serve did not answer /healthz in time:\n"
                       + log.read_text(errors="replace")[-4000:])


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`weightsmith serve` on a free port; stopped with SIGINT (as Ctrl-C) at the end."""
    data_dir = tmp_path_factory.mktemp("served")
    port = free_port()
    log = data_dir / "serve.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WEIGHTSMITH_") or k == "WEIGHTSMITH_REQUIRE_SERVICES"}
    env["WEIGHTSMITH_DATA_DIR"] = str(data_dir)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        key = _wait_ready(url, data_dir / "api_key", proc, log)
        yield Served(url, key, data_dir, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


TINY_DIGITS = {
    "name": "dashboard-digits",
    "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 6, "batch_size": 64, "seed": 0, "validation_split": 0.2},
    "checkpoints": {"every_epochs": 2, "keep_last": 2, "keep_best": 1, "monitor": "val_loss"},
}


def wait_finished(client: WeightsmithClient, job_id: str) -> dict[str, Any]:
    for _ in client.events(job_id):
        pass
    job = client.get_job(job_id)
    assert job["status"] in TERMINAL_STATUSES
    return job


@pytest.fixture(scope="session")
def finished_job(served: Served) -> dict[str, Any]:
    """A tiny digits MLP trained to the end by the live worker."""
    with served.client() as client:
        job = client.submit(TINY_DIGITS)
        done = wait_finished(client, job["id"])
    assert done["status"] == "succeeded", done
    return done


TINY_SWEEP = {
    "name": "dashboard-sweep",
    "base": {**TINY_DIGITS, "name": "dashboard-trial",
             "training": {**TINY_DIGITS["training"], "epochs": 9},
             "checkpoints": {"every_epochs": 3, "keep_last": 1, "keep_best": 1,
                             "monitor": "val_accuracy"}},
    "space": {"optimizer.learning_rate": {"log_uniform": [1e-4, 0.05]},
              "model.layers[0].units": {"choice": [8, 16]},
              "optimizer.type": {"choice": ["sgd", "adam"]}},
    "search": {"method": "random", "seed": 3, "max_trials": 6, "max_concurrent": 2},
    "scheduler": {"type": "asha", "metric": "val_accuracy", "mode": "max",
                  "grace_epochs": 1, "reduction_factor": 3},
}


@pytest.fixture(scope="session")
def finished_sweep(served: Served) -> dict[str, Any]:
    """A small ASHA sweep of the tiny digits MLP, run to the end by the live worker; with its
    trials and its events (as the API gives them)."""
    with served.client() as client:
        sweep = client.submit_sweep(TINY_SWEEP)
        events = list(client.sweep_events(sweep["id"]))
        done = client.get_sweep(sweep["id"])
        trials = client.sweep_trials(sweep["id"])
    assert done["status"] == "succeeded", done
    return {"sweep": done, "trials": trials, "events": events}
