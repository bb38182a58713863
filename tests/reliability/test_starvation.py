"""No starvation (issue 19): held event streams and slow clients leave the API answering.

Before the ASGI front, 8 such connections (a gthread worker's 8 threads) made `/healthz` and
predict time out in `weightsmith serve`, 16-24 in `weightsmith api`. Here both modes run as
real processes on loopback, with ten times the threads held: event streams following a job
(checked to stay open), connections trickling their headers a byte a second and connections
sending an endless chunked body. Every `/healthz` and predict request must still be answered
200 (each within the client's timeout), and afterwards no held connection was dropped. The
full counts of the goal (200 streams + 100 slow connections, p99 figures) are measured by
benchmarks/service/bench_starvation.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.hostile_clients import Holder, timed_requests
from tests.reliability.processes import ServedApi

SSE_STREAMS = 40
SLOW_HEADERS = 20
ENDLESS_CHUNKED = 20
REQUESTS = 100


def xor_weights() -> bytes:
    from core.datasets import load_builtin
    from core.training import train

    data = load_builtin("xor")
    spec = {"model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                                 {"type": "dense", "units": 2}]},
            "training": {"epochs": 2, "batch_size": 4, "seed": 0}}
    return bytes(train(spec, data.X, data.y).weights_npz())


def long_job() -> dict[str, object]:
    """Runs (serve) or waits (api, no worker) longer than the test: its stream stays open."""
    return {"name": "starvation", "dataset": "builtin:digits",
            "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                 {"type": "dense", "units": 10}]},
            "training": {"epochs": 500, "batch_size": 1, "seed": 0}}


@pytest.fixture(params=["serve", "api"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServedApi]:
    # Deadlines longer than the test: the connections must stay held while it measures
    # (tests/reliability/test_slow_clients.py proves they are cut at the defaults' deadlines).
    served = ServedApi(request.param, tmp_path / request.param,
                       WEIGHTSMITH_RATE_LIMIT="1000000 per second",
                       WEIGHTSMITH_HEADER_TIMEOUT_S="600", WEIGHTSMITH_BODY_TIMEOUT_S="600")
    served.start()
    try:
        yield served
    finally:
        served.stop()
        print(served.log())  # shown when the test fails


@pytest.mark.slow
def test_held_streams_and_slow_clients_do_not_starve_the_api(server: ServedApi) -> None:
    auth = {"Authorization": f"Bearer {server.key}"}
    imported = httpx.post(f"{server.url}/v1/checkpoints?loss=cross_entropy",
                          content=xor_weights(), timeout=30,
                          headers={**auth, "Content-Type": "application/x-npz"})
    assert imported.status_code == 201, imported.text
    predict_path = f"/v1/checkpoints/{imported.json()['id']}/predict"
    predict_body = json.dumps({"inputs": [[0.0, 1.0]]}).encode()
    job = httpx.post(f"{server.url}/v1/jobs", json=long_job(), headers=auth, timeout=30)
    assert job.status_code == 202, job.text

    holder = Holder(server.port, trickle_s=0.5)
    try:
        holder.open_sse(SSE_STREAMS, f"/v1/jobs/{job.json()['id']}/events", server.key)
        holder.open_slow_headers(SLOW_HEADERS)
        holder.open_endless_chunked(ENDLESS_CHUNKED)
        holder.start()
        time.sleep(1.5)  # a few trickles and event-hub polls first
        healthz = timed_requests(server.port, "GET", "/healthz", REQUESTS, timeout=5.0)
        predict = timed_requests(server.port, "POST", predict_path, REQUESTS, timeout=5.0,
                                 body=predict_body,
                                 headers={**auth, "Content-Type": "application/json"})
        still_open = holder.still_open()
    finally:
        holder.close()
    assert len(healthz) == REQUESTS and len(predict) == REQUESTS
    assert still_open == {"sse": SSE_STREAMS, "slow_headers": SLOW_HEADERS,
                          "endless_chunked": ENDLESS_CHUNKED}
