"""service/registry_cache.py: a model predict's resolution is cached per process, and a
change announced and settled through Redis reaches every cache from its next read, whatever
fails in between (tests/reliability/test_alias_processes.py runs it across real processes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from config.settings import Settings
from service import registry_cache
from service.app import create_app
from service.errors import ApiError
from service.registry_cache import Generations, RegistryCache
from tests.reliability.processes import free_port

KEY = ("tenant_1", "digits", "alias", "champion")


class Truth:
    """The database's answer, and how often it was asked."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.loads = 0

    def load(self) -> int:
        self.loads += 1
        return self.value


@pytest.fixture
def caches(redis_url: str) -> Iterator[tuple[RegistryCache, RegistryCache]]:
    """Two API processes' caches over one Redis."""
    a, b = RegistryCache(Generations(redis_url)), RegistryCache(Generations(redis_url))
    yield a, b
    for cache in (a, b):
        assert cache.generations is not None
        cache.generations.client.close()


def resolve(cache: RegistryCache, truth: Truth) -> int:
    return cache.resolve(KEY, "tenant_1", "digits", truth.load)


def test_a_resolution_is_read_once_until_a_change_in_any_process(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    a, b = caches
    truth = Truth(1)
    resolve(a, truth)  # no token yet: created, this answer not cached
    assert [resolve(a, truth) for _ in range(5)] == [1] * 5
    assert truth.loads == 2
    with b.change("tenant_1", "digits"):
        truth.value = 2  # the transaction's write
    assert resolve(a, truth) == 2 and truth.loads == 3
    assert resolve(a, truth) == 2 and truth.loads == 3
    # Another model's change leaves this entry alone.
    with b.change("tenant_1", "other"):
        pass
    assert resolve(a, truth) == 2 and truth.loads == 3


def test_nothing_is_cached_while_a_change_is_in_flight(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    a, b = caches
    truth = Truth(1)
    resolve(a, truth)
    resolve(a, truth)
    with b.change("tenant_1", "digits"):
        # Before the commit a reader may see the old answer; it must not keep it.
        assert [resolve(a, truth) for _ in range(3)] == [1] * 3
        truth.value = 2
        assert resolve(a, truth) == 2
    loads = truth.loads
    assert resolve(a, truth) == 2 and truth.loads == loads + 1
    assert resolve(a, truth) == 2 and truth.loads == loads + 1


def test_a_lost_settle_keeps_readers_correct_until_the_in_flight_mark_expires(
        caches: tuple[RegistryCache, RegistryCache], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = caches
    monkeypatch.setattr(registry_cache, "IN_FLIGHT_TTL_MS", 300)
    truth = Truth(1)
    resolve(a, truth)
    resolve(a, truth)  # cached: 1

    def broken(*_args: object) -> None:
        raise redis.ConnectionError("Redis went away after the commit")

    assert b.generations is not None
    monkeypatch.setattr(b.generations, "settle", broken)
    with b.change("tenant_1", "digits"):
        truth.value = 2
    loads = truth.loads
    assert resolve(a, truth) == 2 and truth.loads == loads + 1  # in flight: not cached
    time.sleep(0.4)
    assert [resolve(a, truth) for _ in range(3)] == [2] * 3
    assert truth.loads == loads + 2  # cached again, under the announced token


def test_concurrent_changes_block_caching_until_the_last_settles(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    a, b = caches
    truth = Truth(1)
    resolve(a, truth)
    with b.change("tenant_1", "digits"):
        with a.change("tenant_1", "digits"):
            truth.value = 2
        # The first change settled; the second is still in flight.
        truth.value = 3
        assert resolve(a, truth) == 3
        loads = truth.loads
        assert resolve(a, truth) == 3 and truth.loads == loads + 1
    assert resolve(a, truth) == 3


def test_a_change_redis_cannot_be_told_of_is_refused_before_it_writes() -> None:
    cache = RegistryCache(Generations(f"redis://127.0.0.1:{free_port()}/0"))
    wrote: list[bool] = []
    with pytest.raises(ApiError) as refused, cache.change("tenant_1", "digits"):
        wrote.append(True)
    assert refused.value.status == 503 and not wrote


def test_an_unreachable_redis_means_the_database_answers_every_request() -> None:
    cache = RegistryCache(Generations(f"redis://127.0.0.1:{free_port()}/0"))
    truth = Truth(1)
    assert [resolve(cache, truth) for _ in range(3)] == [1] * 3
    assert truth.loads == 3


def test_a_redis_that_lost_its_data_never_revives_an_old_entry(
        caches: tuple[RegistryCache, RegistryCache], redis_url: str) -> None:
    a, _ = caches
    truth = Truth(1)
    resolve(a, truth)
    resolve(a, truth)  # cached under the first token
    redis.Redis.from_url(redis_url).flushdb()
    truth.value = 2  # changed while nobody could be told
    assert resolve(a, truth) == 2


def test_without_redis_nothing_is_cached() -> None:
    cache = registry_cache.make_registry_cache("filesystem://")
    truth = Truth(1)
    assert [resolve(cache, truth) for _ in range(3)] == [1] * 3
    assert truth.loads == 3
    with cache.change("tenant_1", "digits"):
        truth.value = 2
    assert resolve(cache, truth) == 2


def test_through_the_api_a_move_is_served_at_once_and_refused_without_redis(
        settings: Settings, migrated: None, redis_url: str) -> None:
    from core.checkpoint import export_weights_npz
    from core.network import build_network
    from tests.service.conftest import make_key

    def app_on(broker_url: str) -> FlaskClient:
        return create_app(settings.with_overrides(broker_url=broker_url),
                          testing=True).test_client()

    live, other, down = app_on(redis_url), app_on(redis_url), app_on(
        f"redis://127.0.0.1:{free_port()}/0")
    auth = {"Authorization": "Bearer " + make_key(
        live.application.extensions["weightsmith"].session_factory, "acme")}
    model = {"layers": [{"type": "dense", "units": 3}]}
    for seed in (1, 2):
        made = live.post("/v1/checkpoints", headers={**auth,
                                                     "Content-Type": "application/x-npz"},
                         data=bytes(export_weights_npz(build_network(model, (4,), seed=seed))))
        assert made.status_code == 201, made.data
        if seed == 1:
            assert live.post("/v1/models", json={"name": "m"}, headers=auth).status_code == 201
        assert live.post("/v1/models/m/versions", headers=auth, json={
            "checkpoint_id": made.get_json()["id"]}).status_code == 201
    assert live.put("/v1/models/m/aliases/champion", json={"version": 1},
                    headers=auth).status_code == 200

    def served(client: FlaskClient) -> int:
        answer = client.post("/v1/models/m/predict", headers=auth,
                             json={"inputs": [[0.0, 1.0, 2.0, 3.0]], "alias": "champion"})
        assert answer.status_code == 200, answer.data
        return int(answer.get_json()["model"]["version"])

    assert [served(other) for _ in range(3)] == [1, 1, 1]  # cached in the other app
    assert live.put("/v1/models/m/aliases/champion", json={"version": 2},
                    headers=auth).status_code == 200
    assert served(other) == 2
    refused = down.put("/v1/models/m/aliases/champion", json={"version": 1}, headers=auth)
    assert refused.status_code == 503, refused.data
    assert served(other) == served(down) == 2  # nothing moved; the database answers `down`
    history = live.get("/v1/models/m/aliases/champion/history", headers=auth).get_json()
    assert [span["version"] for span in history["items"]] == [1, 2]
