"""What a model predict resolves to (alias, version or newest -> checkpoint and labels), cached
per API process and still correct across processes: after an alias moves, every API process
serves the new version from its next request.

Resolving on every request cost a database round trip that predict by checkpoint id does not
pay (2.9 vs 1.4 ms of API CPU, benchmarks/service/bench_predict.py --alias). With a Redis
broker (production), each model has a *generation* token in Redis, and a cached resolution is
used only while the token it was read under is still the current one: one MGET per request,
no SQL. Embedded mode (no Redis) resolves in the database on every request, as before.

The protocol (``Generations``), for one model of one tenant:

- a change (alias set or deleted, version added) first *announces* itself: a new random token
  and +1 on an in-flight counter (with a TTL), in one Lua call, before the transaction writes;
  if Redis cannot be told, the change is refused (503) and nothing is written;
- after the commit it *settles*: another new token, -1 on the counter;
- a reader MGETs (token, in-flight). While a change is in flight it reads the database and
  caches nothing; otherwise it uses its entry if the entry was read under this token, else it
  reads the database *after* reading the token and caches the result under that token.

So an entry is never older than the token it is filed under: a reader that raced a commit
filed the result under a token that the settle replaces. Should the settle itself fail (Redis
lost after the commit), the in-flight counter still blocks caching until its TTL, after which
readers see a token announced *before* the commit, which no entry made before it carries. The
tokens are random, not counters, so a Redis that lost its data cannot bring an old one back;
a missing token is created by the first reader (SET NX) and that request is not cached. When
Redis cannot be read, requests go to the database for ``FALLBACK_S``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from service.errors import ApiError

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = "weightsmith:registry"
# Longer than any alias-move transaction (a few statements): a change whose settle never came
# stops blocking the cache after this long.
IN_FLIGHT_TTL_MS = 60_000
FALLBACK_S = 5.0
MAX_ENTRIES = 10_000

# KEYS: token, in-flight counter. ARGV: new token, TTL (ms).
_ANNOUNCE_LUA = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# The counter may have expired meanwhile: never let it go below zero (a negative count would
# hide the next change's announcement).
_SETTLE_LUA = """
redis.call('SET', KEYS[1], ARGV[1])
local left = tonumber(redis.call('GET', KEYS[2]) or '0')
if left <= 1 then
  redis.call('DEL', KEYS[2])
else
  redis.call('DECR', KEYS[2])
end
return 1
"""


def new_token() -> str:
    return os.urandom(12).hex()


class Generations:
    """Per-model generation tokens in Redis (the protocol in the module docstring)."""

    def __init__(self, url: str, *, prefix: str = KEY_PREFIX) -> None:
        import redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._announce = self.client.register_script(_ANNOUNCE_LUA)
        self._settle = self.client.register_script(_SETTLE_LUA)
        self._local = threading.local()

    def keys(self, tenant_id: str, name: str) -> list[str]:
        base = f"{self.prefix}:{tenant_id}:{name}"
        return [f"{base}:token", f"{base}:in-flight"]

    def read(self, tenant_id: str, name: str) -> str | None:
        """The current token, or None when nothing may be cached now (a change in flight,
        or no token yet: one is created for the next request)."""
        token_key, flight_key = self.keys(tenant_id, name)
        token, in_flight = self._mget(token_key, flight_key)
        if in_flight is not None and int(in_flight) > 0:
            return None
        if token is None:
            self.client.set(token_key, new_token(), nx=True)
            return None
        return bytes(token).decode()

    def _mget(self, *keys: str) -> list[bytes | None]:
        """MGET on this thread's own connection, sent as one packed command.

        Predict pays this on every request: redis-py's client path (pool checkout and
        return, retry wrapper, response callbacks) cost ~3x the round trip's own CPU
        (58 vs 19 us a call, measured in process).
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.client.connection_pool.make_connection()
        try:
            conn.send_packed_command(conn.pack_command("MGET", *keys), check_health=False)
            return list(conn.read_response())
        except Exception:
            conn.disconnect()
            raise

    def announce(self, tenant_id: str, name: str) -> None:
        self._announce(keys=self.keys(tenant_id, name), args=[new_token(), IN_FLIGHT_TTL_MS])

    def settle(self, tenant_id: str, name: str) -> None:
        self._settle(keys=self.keys(tenant_id, name), args=[new_token()])


class RegistryCache:
    """Resolutions of model predicts, each filed under the generation token it was read under.

    ``generations`` None (no Redis): nothing is cached, every resolve reads the database.
    """

    def __init__(self, generations: Generations | None) -> None:
        self.generations = generations
        self._items: dict[tuple[str, ...], tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0

    def resolve(self, key: tuple[str, ...], tenant_id: str, name: str,
                load: Callable[[], T]) -> T:
        """``load()``'s answer for ``key`` (which must start with the tenant and model name),
        from this process's cache while the model's generation has not moved."""
        token = self._token(tenant_id, name)
        if token is None:
            return load()
        hit = self._items.get(key)
        if hit is not None and hit[0] == token:
            return hit[1]  # type: ignore[no-any-return]
        value = load()  # read after the token: the entry is no older than its token
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[key] = (token, value)
        return value

    def _token(self, tenant_id: str, name: str) -> str | None:
        if self.generations is None or time.monotonic() < self._down_until:
            return None
        try:
            return self.generations.read(tenant_id, name)
        except Exception as exc:  # Redis down: the database answers, uncached, for a while
            log.warning("registry generations unavailable (%s); resolving in the database", exc)
            self._down_until = time.monotonic() + FALLBACK_S
            return None

    @contextmanager
    def change(self, tenant_id: str, name: str) -> Iterator[None]:
        """Wrap a transaction that changes what the model's predict resolves to (alias moves,
        new versions): announced before it, settled after its commit (or rollback)."""
        if self.generations is None:
            yield
            return
        try:
            self.generations.announce(tenant_id, name)
        except Exception as exc:
            log.warning("cannot announce a registry change (%s)", exc)
            raise ApiError(503, "the model registry cannot tell the API processes about this "
                           "change now (Redis unreachable); nothing was changed, retry",
                           kind="unavailable", headers={"Retry-After": "5"}) from None
        try:
            yield
        finally:
            try:
                self.generations.settle(tenant_id, name)
            except Exception as exc:  # the in-flight counter's TTL keeps readers correct
                log.warning("cannot settle a registry change (%s); caching resumes in %d s",
                            exc, IN_FLIGHT_TTL_MS // 1000)


def make_registry_cache(broker_url: str) -> RegistryCache:
    if broker_url.startswith(("redis://", "rediss://")):
        return RegistryCache(Generations(broker_url))
    return RegistryCache(None)
