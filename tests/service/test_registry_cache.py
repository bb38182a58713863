"""service/registry_cache.py: a model predict's resolution is cached per process, and a change
pushed through Redis reaches every cache before its next answer, whatever fails in between
(tests/reliability/test_alias_processes.py runs it across real `weightsmith api` processes)."""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
import redis
from flask.testing import FlaskClient

from config.settings import Settings
from service import registry_cache
from service.app import create_app
from service.errors import ApiError
from service.registry_cache import RegistryCache
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


def live(cache: RegistryCache, timeout: float = 10.0) -> RegistryCache:
    """The cache once its process's subscription is up (it starts on first use)."""
    sub = cache.subscription()
    assert sub is not None
    deadline = time.monotonic() + timeout
    while not sub.live:
        assert time.monotonic() < deadline, "the subscription did not come up"
        time.sleep(0.01)
    return cache


@pytest.fixture
def make_cache(redis_url: str) -> Iterator[Callable[[], RegistryCache]]:
    """API processes' caches over one Redis, on a channel of this test's own (pub/sub is
    shared by every database of the server)."""
    prefix = f"test-registry-{uuid.uuid4().hex[:8]}"
    made: list[RegistryCache] = []

    def make() -> RegistryCache:
        made.append(RegistryCache(redis_url, prefix=prefix))
        return made[-1]

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def caches(make_cache: Callable[[], RegistryCache]) -> tuple[RegistryCache, RegistryCache]:
    return live(make_cache()), live(make_cache())


def resolve(cache: RegistryCache, truth: Truth) -> int:
    return cache.resolve(KEY, "tenant_1", "digits", truth.load)


def test_a_resolution_is_read_once_until_a_change_in_any_process(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    a, b = caches
    truth = Truth(1)
    assert [resolve(a, truth) for _ in range(5)] == [1] * 5
    assert truth.loads == 1
    with b.change("tenant_1", "digits"):
        truth.value = 2  # the transaction's write
    assert resolve(a, truth) == 2 and truth.loads == 2
    assert resolve(a, truth) == 2 and truth.loads == 2
    # Another model's change leaves this entry alone.
    with b.change("tenant_1", "other"):
        pass
    assert resolve(a, truth) == 2 and truth.loads == 2


def test_a_change_answers_after_every_subscribed_process_applied_it(
        make_cache: Callable[[], RegistryCache], monkeypatch: pytest.MonkeyPatch) -> None:
    """No request reaches `a` or `c` here: only their threads apply the change (slowly), and
    the change waits for their acknowledgements."""
    a, b, c = live(make_cache()), make_cache(), live(make_cache())
    truth = Truth(1)
    for cache in (a, c):
        resolve(cache, truth)
        sub = cache.subscription()
        assert sub is not None and ("tenant_1", "digits") in sub.items
        apply = sub._apply

        def slow(reply: list[bytes], acks: list[str], apply: Callable[..., None] = apply
                 ) -> None:
            time.sleep(0.2)
            apply(reply, acks)

        monkeypatch.setattr(sub, "_apply", slow)
    with b.change("tenant_1", "digits"):
        truth.value = 2
    for cache in (a, c):
        sub = cache.subscription()
        assert sub is not None and ("tenant_1", "digits") not in sub.items


def test_a_change_reaching_the_socket_is_applied_before_the_next_answer_without_the_thread(
        make_cache: Callable[[], RegistryCache], monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader polls the socket itself: the listening thread is held off here, and the
    next answer still sees the change (acknowledged late, so the change's wait times out)."""
    real, gate = select.select, threading.Event()

    def held(r: list[object], w: list[object], x: list[object],
             timeout: float | None = None) -> tuple[list[object], ...]:
        if threading.current_thread().name == "registry-changes" and timeout:
            gate.wait()
        return real(r, w, x, timeout)  # type: ignore[type-var]

    monkeypatch.setattr(registry_cache, "select", SimpleNamespace(select=held))
    monkeypatch.setattr(registry_cache, "ACK_TIMEOUT_S", 0.3)
    a, b = live(make_cache()), make_cache()
    truth = Truth(1)
    assert [resolve(a, truth) for _ in range(3)] == [1] * 3
    with b.change("tenant_1", "digits"):
        truth.value = 2
    sub = a.subscription()
    assert sub is not None and real([sub.conn._sock], [], [], 5.0)[0]  # it has arrived
    assert resolve(a, truth) == 2 and truth.loads == 2
    gate.set()


def test_a_load_that_overlapped_a_change_is_not_cached(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    """A reader that read the database before the commit answers with what it read, but
    cannot file that answer after the change's invalidation."""
    a, b = caches
    truth = Truth(1)
    read, release = threading.Event(), threading.Event()

    def slow_load() -> int:
        value = truth.load()
        read.set()
        assert release.wait(10)
        return value

    answered: list[int] = []
    reader = threading.Thread(target=lambda: answered.append(
        a.resolve(KEY, "tenant_1", "digits", slow_load)))
    reader.start()
    assert read.wait(10)
    with b.change("tenant_1", "digits"):
        truth.value = 2
    release.set()
    reader.join(10)
    assert answered == [1]
    assert [resolve(a, truth) for _ in range(3)] == [2] * 3
    assert truth.loads == 2


def test_a_lost_subscription_drops_the_cache_and_disables_it_until_re_subscribed(
        caches: tuple[RegistryCache, RegistryCache], redis_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = caches
    monkeypatch.setattr(registry_cache, "RETRY_S", 0.5)
    truth = Truth(1)
    assert [resolve(a, truth) for _ in range(3)] == [1] * 3
    sub = a.subscription()
    assert sub is not None
    host, port = sub.conn._sock.getsockname()[:2]
    assert redis.Redis.from_url(redis_url).client_kill(f"{host}:{port}")
    truth.value = 2  # a change nobody could hear of
    deadline = time.monotonic() + 5
    while sub.live:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    loads = truth.loads
    assert [resolve(a, truth) for _ in range(3)] == [2] * 3
    assert truth.loads == loads + 3  # the database answers each one meanwhile
    live(a)
    assert [resolve(a, truth) for _ in range(3)] == [2] * 3
    assert truth.loads == loads + 4  # cached again


def test_a_silent_subscription_is_noticed_by_its_heartbeat(
        make_cache: Callable[[], RegistryCache], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_cache, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(registry_cache, "RETRY_S", 5.0)
    a = live(make_cache())
    truth = Truth(1)
    resolve(a, truth)
    sub = a.subscription()
    assert sub is not None
    assert sub.items
    monkeypatch.setattr(sub.conn, "send_command", lambda *args: None)  # pings go nowhere
    deadline = time.monotonic() + 10
    while sub.live:
        assert time.monotonic() < deadline, "the silence was not noticed"
        time.sleep(0.05)
    assert not sub.items
    assert resolve(a, truth) == 1 and truth.loads == 2


def test_a_lost_settle_keeps_the_model_uncached_until_its_mark_expires(
        make_cache: Callable[[], RegistryCache], monkeypatch: pytest.MonkeyPatch) -> None:
    """Also in a process that subscribed after the change began: it reads the in-flight set."""
    monkeypatch.setattr(registry_cache, "IN_FLIGHT_TTL_MS", 2500)
    a, b = live(make_cache()), live(make_cache())
    truth = Truth(1)
    resolve(a, truth)  # cached: 1

    def broken(*_args: object, **_kwargs: object) -> None:
        raise redis.ConnectionError("Redis went away after the commit")

    monkeypatch.setattr(b, "_settle", broken)
    with b.change("tenant_1", "digits"):
        late = live(make_cache())
        truth.value = 2
    for cache in (a, late):
        loads = truth.loads
        assert [resolve(cache, truth) for _ in range(2)] == [2] * 2
        assert truth.loads == loads + 2  # in flight: not cached
    time.sleep(2.6)
    for cache in (a, late):
        loads = truth.loads
        assert [resolve(cache, truth) for _ in range(3)] == [2] * 3
        assert truth.loads == loads + 1  # cached again


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
    loads = truth.loads
    assert resolve(a, truth) == 3 and truth.loads == loads


def _in_child(cache: RegistryCache, truth: Truth, answers: multiprocessing.Queue[object]
              ) -> None:
    truth.value = 2  # changed while this process could not hear of it
    sub = cache.subscription()
    answers.put((resolve(cache, truth), sub is not None and sub.pid == os.getpid()))


def test_a_forked_process_has_its_own_subscription_and_no_inherited_entries(
        caches: tuple[RegistryCache, RegistryCache]) -> None:
    a, _ = caches
    truth = Truth(1)
    resolve(a, truth)
    context = multiprocessing.get_context("fork")
    answers: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(target=_in_child, args=(a, truth, answers))
    child.start()
    assert answers.get(timeout=30) == (2, True)
    child.join(30)
    assert resolve(a, truth) == 1  # the parent's entry is its own


def test_a_change_redis_cannot_be_told_of_is_refused_before_it_writes() -> None:
    cache = RegistryCache(f"redis://127.0.0.1:{free_port()}/0")
    wrote: list[bool] = []
    with pytest.raises(ApiError) as refused, cache.change("tenant_1", "digits"):
        wrote.append(True)
    assert refused.value.status == 503 and not wrote


def test_an_unreachable_redis_means_the_database_answers_every_request() -> None:
    cache = RegistryCache(f"redis://127.0.0.1:{free_port()}/0")
    truth = Truth(1)
    assert [resolve(cache, truth) for _ in range(3)] == [1] * 3
    assert truth.loads == 3
    cache.close()


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

    live_app, other, down = app_on(redis_url), app_on(redis_url), app_on(
        f"redis://127.0.0.1:{free_port()}/0")
    auth = {"Authorization": "Bearer " + make_key(
        live_app.application.extensions["weightsmith"].session_factory, "acme")}
    model = {"layers": [{"type": "dense", "units": 3}]}
    for seed in (1, 2):
        made = live_app.post("/v1/checkpoints", headers={**auth,
                                                         "Content-Type": "application/x-npz"},
                             data=bytes(export_weights_npz(build_network(model, (4,),
                                                                         seed=seed))))
        assert made.status_code == 201, made.data
        if seed == 1:
            assert live_app.post("/v1/models", json={"name": "m"},
                                 headers=auth).status_code == 201
        assert live_app.post("/v1/models/m/versions", headers=auth, json={
            "checkpoint_id": made.get_json()["id"]}).status_code == 201
    assert live_app.put("/v1/models/m/aliases/champion", json={"version": 1},
                        headers=auth).status_code == 200

    def served(client: FlaskClient) -> int:
        answer = client.post("/v1/models/m/predict", headers=auth,
                             json={"inputs": [[0.0, 1.0, 2.0, 3.0]], "alias": "champion"})
        assert answer.status_code == 200, answer.data
        return int(answer.get_json()["model"]["version"])

    caches = [c.application.extensions["weightsmith"].registry_cache
              for c in (live_app, other, down)]
    try:
        live(caches[1])
        assert [served(other) for _ in range(3)] == [1, 1, 1]  # cached in the other app
        assert live_app.put("/v1/models/m/aliases/champion", json={"version": 2},
                            headers=auth).status_code == 200
        assert served(other) == 2
        refused = down.put("/v1/models/m/aliases/champion", json={"version": 1}, headers=auth)
        assert refused.status_code == 503, refused.data
        assert served(other) == served(down) == 2  # nothing moved; the database answers `down`
        history = live_app.get("/v1/models/m/aliases/champion/history", headers=auth).get_json()
        assert [span["version"] for span in history["items"]] == [1, 2]
    finally:
        for cache in caches:
            cache.close()
