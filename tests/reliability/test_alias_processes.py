"""Issue 16: after an alias moves, every API process serves the new version from its next
request, although each process caches what a model predict resolves to
(service/registry_cache.py: invalidations pushed through a Redis subscription per process).

Two `weightsmith api` processes on PostgreSQL + Redis. Both have served the alias (so both
hold it in their cache); the alias is moved through one, and the very next request to the
other must answer with the new version, its checkpoint and its outputs. Repeated, each
process moving in turn, with a version added (which moves "newest") in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from core.checkpoint import export_weights_npz
from core.network import build_network
from service.registry_cache import RegistryCache
from store import tenants
from tests.reliability.conftest import BackendFactory
from tests.reliability.processes import ApiProcess

ROWS = np.random.default_rng(0).normal(size=(3, 4)).tolist()
MODEL = {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                    {"type": "dense", "units": 3}]}


def weights(seed: int) -> bytes:
    return bytes(export_weights_npz(build_network(MODEL, (4,), seed=seed)))


def start_api(env: dict[str, str], log_dir: Path) -> ApiProcess:
    log_dir.mkdir()
    api = ApiProcess(env, log_dir)
    api.start()
    return api


def predict(api: ApiProcess, auth: dict[str, str], **which: Any) -> tuple[int, str, Any]:
    r = httpx.post(f"{api.url}/v1/models/m/predict", json={"inputs": ROWS, **which},
                   headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["model"]["version"], body["checkpoint_id"], body["outputs"]


def test_an_alias_moved_through_one_api_process_is_served_by_the_other_at_once(
        production: BackendFactory) -> None:
    b = production()
    with b.sessions.begin() as s:
        key = tenants.create_api_key(s, tenants.get_or_create(s, "aliases").id)
    auth = {"Authorization": f"Bearer {key}"}
    apis = [start_api(b.env, b.log_dir / "a"), start_api(b.env, b.log_dir / "b")]
    try:
        first = apis[0].url
        checkpoints, outputs = [], {}
        for seed in range(3):
            r = httpx.post(f"{first}/v1/checkpoints", content=weights(seed), timeout=30,
                           headers={**auth, "Content-Type": "application/x-npz"})
            assert r.status_code == 201, r.text
            checkpoints.append(r.json()["id"])
            outputs[r.json()["id"]] = httpx.post(
                f"{first}/v1/checkpoints/{r.json()['id']}/predict", json={"inputs": ROWS},
                headers=auth, timeout=30).json()["outputs"]
        assert len({str(o) for o in outputs.values()}) == 3  # the versions are told apart
        httpx.post(f"{first}/v1/models", json={"name": "m"}, headers=auth).raise_for_status()
        for checkpoint_id in checkpoints[:2]:
            httpx.post(f"{first}/v1/models/m/versions", json={"checkpoint_id": checkpoint_id},
                       headers=auth).raise_for_status()

        def served(api: ApiProcess, version: int) -> None:
            number, checkpoint_id, out = predict(api, auth, alias="champion")
            assert (number, checkpoint_id) == (version, checkpoints[version - 1])
            assert out == outputs[checkpoint_id]

        httpx.put(f"{first}/v1/models/m/aliases/champion", json={"version": 1},
                  headers=auth).raise_for_status()
        for move, version in enumerate([2, 1, 2, 1, 2, 1]):
            mover, other = apis[move % 2], apis[1 - move % 2]
            for api in apis:  # both have the current version cached
                for _ in range(3):
                    served(api, 1 if version == 2 else 2)
            r = httpx.put(f"{mover.url}/v1/models/m/aliases/champion",
                          json={"version": version}, headers=auth)
            assert r.status_code == 200, r.text
            served(other, version)  # its very next request
            served(mover, version)

        # Both answered from their caches: each holds its subscription to the changes.
        url = b.env["WEIGHTSMITH_BROKER_URL"]
        channel = RegistryCache(url).channel
        assert redis.Redis.from_url(url).pubsub_numsub(channel) == [(channel.encode(), 2)]
        for api in apis:
            assert predict(api, auth)[0] == 2  # newest, now cached in both
        httpx.post(f"{apis[1].url}/v1/models/m/versions",
                   json={"checkpoint_id": checkpoints[2]}, headers=auth).raise_for_status()
        number, checkpoint_id, out = predict(apis[0], auth)
        assert (number, checkpoint_id, out) == (3, checkpoints[2], outputs[checkpoints[2]])

        r = httpx.delete(f"{apis[0].url}/v1/models/m/aliases/champion", headers=auth)
        assert r.status_code == 204, r.text
        gone = httpx.post(f"{apis[1].url}/v1/models/m/predict",
                          json={"inputs": ROWS, "alias": "champion"}, headers=auth)
        assert gone.status_code == 404, gone.text
    finally:
        for api in apis:
            api.kill()
