"""What a model predict resolves to (alias, version or newest -> checkpoint and labels), cached
per API process and still correct across processes: after an alias moves, every API process
serves the new version from its next request.

Resolving in the database on every request cost a round trip that predict by checkpoint id
does not pay (2.9 vs 1.4 ms of API CPU); so did checking a per-model token in Redis on every
request (one MGET: 11 us of CPU and a wait). Here changes are *pushed*: in the steady state an
alias predict polls one socket with a zero timeout and looks in a dict, 1.8 us of CPU and no
I/O (benchmarks/service/bench_registry_resolve.py).

With Redis (production), for one model of one tenant:

- each API process holds one subscription to the registry-changes channel (made lazily in the
  process that serves model predicts, so after gunicorn's fork; keyed on the pid), read by a
  daemon thread. Before using its cache a request polls that socket with a zero timeout and
  applies whatever is waiting (or waits for the thread that is applying it), so an
  invalidation that reached the process is never ignored, however the threads are scheduled;
- a change (alias set or deleted, version added) runs inside ``change()``: *begin* (one Lua
  call: the change joins an in-flight set with a TTL, and is published) before its
  transaction, *settle* (leaves the set, published again) after the commit or rollback. Each
  process drops the model's entries on both, and caches nothing of the model while one of its
  changes is in flight. Settle waits up to ``ACK_TIMEOUT_S`` until as many processes as
  PUBLISH reached have acknowledged it (RPUSH to the change's ack list, after applying it), so
  the change's HTTP answer comes after every process applied it;
- a resolution is filed under the process's (epoch, the model's change count) read *before*
  its load, and only if both are unchanged when it is filed: a load that overlapped an
  invalidation is not cached, one filed before it is dropped by it.

What can go wrong, and why the answers stay right:

- Redis unreachable at *begin*: the change is refused (503) and nothing is written.
- *Settle* cannot be published (Redis lost after the commit): processes whose subscription
  broke with it dropped their caches; those still subscribed hold the begin's in-flight mark,
  and cache nothing of the model until ``IN_FLIGHT_TTL_MS``, longer than any change's
  transaction, so whatever they cache afterwards was read after the commit.
- A gap in a subscription (connect error, EOF, no pong within ``HEARTBEAT_S``): the process
  drops its whole cache and caches nothing (the database answers) until it has re-subscribed
  and then read the in-flight set. Begin adds to the set and publishes atomically, so a change
  is either in what it read or announced after it subscribed.
- Acknowledgements time out (a process stalled, or its message still in transit): the change
  stands and is answered, with a warning in the log. Such a process applies the change before
  its next cached answer once the message reaches its socket; one whose connection died
  silently serves its entries until its heartbeat notices (at most 2 x ``HEARTBEAT_S``).
  This is the one case where the guarantee rests on delivery time.

Pub/sub channels are shared by all databases of a Redis server, so the channel's name carries
the database number; keys do not need to.

Without Redis (embedded mode: SQLite, ``weightsmith api`` may still run several processes)
nothing is cached: there is no channel between the processes, and SQLite's cheap change
signal (``PRAGMA data_version``) moves on every commit to any table (a training worker commits
every epoch) and still costs a statement. The in-process query is what predict pays there.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from service.errors import ApiError

log = logging.getLogger(__name__)

T = TypeVar("T")
Model = tuple[str, str]

KEY_PREFIX = "weightsmith:registry"
# Longer than any change's transaction (a few statements): a change whose settle was lost
# stops blocking the model's caching after this long.
IN_FLIGHT_TTL_MS = 60_000
# How long a change's answer waits for the processes' acknowledgements (milliseconds each on
# a healthy box; a stalled process must not hold an alias move for long).
ACK_TIMEOUT_S = 2.0
# An idle subscription pings this often; a ping unanswered by the next one is a gap.
HEARTBEAT_S = 5.0
RETRY_S = 1.0  # between re-subscription attempts; the database answers meanwhile
MAX_ENTRIES = 10_000

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
# KEYS: in-flight set. ARGV: TTL (ms), member, channel, message. Returns PUBLISH's receivers.
_BEGIN_LUA = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""
_SETTLE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
"""
# The changes in flight and the milliseconds each has left, as [member, ms, member, ms, ...].
_IN_FLIGHT_LUA = _NOW_MS + """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
for i = 2, #found, 2 do found[i] = tostring(tonumber(found[i]) - now) end
return found
"""
_MISS = object()


class RegistryCache:
    """Resolutions of model predicts per process; ``url`` None (no Redis): nothing cached."""

    def __init__(self, url: str | None, *, prefix: str = KEY_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self._subscription: _Subscription | None = None
        self._starting = threading.Lock()
        if url is None:
            return
        import redis

        # BLPOP waits for acknowledgements up to ACK_TIMEOUT_S on this client's sockets.
        self.client = redis.Redis.from_url(url, socket_timeout=ACK_TIMEOUT_S + 1.0,
                                           socket_connect_timeout=1.0)
        # RESP2: in RESP3 (redis-py's default) pub/sub replies are push frames that a bare
        # connection's read_response() skips.
        self.subscriptions = redis.ConnectionPool.from_url(
            url, protocol=2, socket_timeout=1.0, socket_connect_timeout=1.0)
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{prefix}:{db}:changes"
        self.in_flight_key = f"{prefix}:in-flight"
        self._begin = self.client.register_script(_BEGIN_LUA)
        self._settle = self.client.register_script(_SETTLE_LUA)
        self.in_flight = self.client.register_script(_IN_FLIGHT_LUA)

    def ack_key(self, change: str) -> str:
        return f"{self.prefix}:acks:{change}"

    def resolve(self, key: tuple[str, ...], tenant_id: str, name: str,
                load: Callable[[], T]) -> T:
        """``load()``'s answer for ``key`` (which must start with the tenant and model name),
        from this process's cache while no change of the model has reached it since."""
        sub = self.subscription()
        if sub is None:
            return load()
        sub.catch_up()
        model = (tenant_id, name)
        hit = sub.items.get(model, {}).get(key, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[no-any-return]
        stamp = sub.stamp(model)
        value = load()  # read after the stamp: an invalidation meanwhile changes the stamp
        if stamp is not None:
            sub.file(model, key, value, stamp)
        return value

    def subscription(self) -> _Subscription | None:
        sub = self._subscription
        if sub is not None and sub.pid == os.getpid():
            return sub
        if self.url is None:
            return None
        with self._starting:  # a forked child starts its own; the parent's socket is not its
            if self._subscription is None or self._subscription.pid != os.getpid():
                self._subscription = _Subscription(self)
            return self._subscription

    @contextmanager
    def change(self, tenant_id: str, name: str) -> Iterator[None]:
        """Wrap a transaction that changes what the model's predict resolves to (alias moves,
        new versions): begun before it, settled after its commit or rollback, answered once
        every subscribed API process applied it (or ``ACK_TIMEOUT_S`` passed)."""
        if self.url is None:
            yield
            return
        change = os.urandom(12).hex()
        member = json.dumps([tenant_id, name, change])
        try:
            self._begin(keys=[self.in_flight_key], args=[
                IN_FLIGHT_TTL_MS, member, self.channel,
                json.dumps(["begin", tenant_id, name, change])])
        except Exception as exc:
            log.warning("cannot announce a registry change (%s)", exc)
            raise ApiError(503, "the model registry cannot tell the API processes about this "
                           "change now (Redis unreachable); nothing was changed, retry",
                           kind="unavailable", headers={"Retry-After": "5"}) from None
        try:
            yield
        finally:
            try:
                self._settle_and_wait(member, json.dumps(["settle", tenant_id, name, change]),
                                      change)
            except Exception as exc:  # the in-flight mark's TTL keeps readers correct
                log.warning("cannot settle a registry change (%s); %s/%s is not cached for "
                            "%d s", exc, tenant_id, name, IN_FLIGHT_TTL_MS // 1000)

    def _settle_and_wait(self, member: str, message: str, change: str) -> None:
        receivers = int(self._settle(keys=[self.in_flight_key],
                                     args=[member, self.channel, message]))
        acked, deadline = 0, time.monotonic() + ACK_TIMEOUT_S
        while acked < receivers and (left := deadline - time.monotonic()) > 0:
            # BLPOP's timeout 0 means forever: never round a short wait down to it.
            if self.client.blpop([self.ack_key(change)], timeout=max(left, 0.01)) is None:
                break
            acked += 1
        self.client.delete(self.ack_key(change))
        if acked < receivers:
            log.warning("%d of %d API processes did not acknowledge registry change %s within "
                        "%.1f s", receivers - acked, receivers, change, ACK_TIMEOUT_S)

    def close(self) -> None:
        """Stop this process's subscription (tests build many apps in one process)."""
        if self._subscription is not None and self._subscription.pid == os.getpid():
            self._subscription.close()


class _Subscription:
    """One process's subscription to the registry changes, and the entries it keeps exact."""

    def __init__(self, cache: RegistryCache) -> None:
        self.cache = cache
        self.pid = os.getpid()
        self.items: dict[Model, dict[tuple[str, ...], Any]] = {}
        self.size = 0
        self.live = False  # subscribed, and the in-flight set read since
        self.epoch = 0  # +1 on every gap or re-subscription
        self.changes: dict[Model, int] = {}  # invalidations applied, per model, this epoch
        self.in_flight: dict[Model, dict[str, float]] = {}  # change -> monotonic deadline
        self.conn: Any = None  # set only while live
        self.pinged = False
        self.closed = False
        self.lock = threading.Lock()  # the fields above
        self.reading = threading.Lock()  # the socket, and applying what it said
        threading.Thread(target=self._run, name="registry-changes", daemon=True).start()

    def catch_up(self) -> None:
        """Apply whatever reached the socket (or is being applied) before a cached answer."""
        conn = self.conn
        if conn is None:
            return  # not live: nothing is cached
        try:
            waiting = bool(select.select([conn._sock], [], [], 0)[0])
        except (OSError, ValueError, TypeError):  # closed under us: the read below says so
            waiting = True
        if waiting or self.reading.locked():
            self.read()

    def read(self) -> None:
        acks: list[str] = []
        with self.reading:
            conn = self.conn
            if conn is None:
                return
            try:
                while conn.can_read(timeout=0):
                    self._apply(conn.read_response(), acks)
            except Exception as exc:
                self._lose(exc)
        for change in acks:  # after the lock: a round trip each, only when a change came
            try:
                key, pipe = self.cache.ack_key(change), self.cache.client.pipeline(False)
                pipe.rpush(key, 1)
                pipe.pexpire(key, IN_FLIGHT_TTL_MS)  # an ack nobody waits for any more
                pipe.execute()
            except Exception as exc:  # the change waits out ACK_TIMEOUT_S, then answers
                log.warning("cannot acknowledge registry change %s (%s)", change, exc)

    def _apply(self, reply: list[bytes], acks: list[str]) -> None:
        if reply[0] == b"pong":
            self.pinged = False
            return
        if reply[0] != b"message":
            return
        phase, tenant_id, name, change = json.loads(reply[2])
        model = (tenant_id, name)
        with self.lock:
            self.size -= len(self.items.pop(model, {}))
            self.changes[model] = self.changes.get(model, 0) + 1
            marks = self.in_flight.setdefault(model, {})
            if phase == "begin":
                marks[change] = time.monotonic() + IN_FLIGHT_TTL_MS / 1000
            else:
                marks.pop(change, None)
                acks.append(change)
            if not marks:
                del self.in_flight[model]

    def stamp(self, model: Model) -> tuple[int, int] | None:
        """What a load must still find when it files its answer; None: do not cache."""
        with self.lock:
            if not self.live:
                return None
            now = time.monotonic()
            if any(deadline > now for deadline in self.in_flight.get(model, {}).values()):
                return None
            return self.epoch, self.changes.get(model, 0)

    def file(self, model: Model, key: tuple[str, ...], value: Any,
             stamp: tuple[int, int]) -> None:
        with self.lock:
            if not self.live or stamp != (self.epoch, self.changes.get(model, 0)):
                return
            if self.size >= MAX_ENTRIES:
                self.items.clear()
                self.size = 0
            entries = self.items.setdefault(model, {})
            self.size += key not in entries
            entries[key] = value

    def _reset(self, *, live: bool, in_flight: dict[Model, dict[str, float]]) -> None:
        with self.lock:
            self.items.clear()
            self.size = 0
            self.changes.clear()
            self.epoch += 1
            self.in_flight = in_flight
            self.live = live

    def _lose(self, exc: BaseException) -> None:
        """A gap in the subscription: forget everything; caller holds ``reading``."""
        if self.conn is None and not self.live:
            return
        if not self.closed:
            log.warning("registry changes subscription lost (%s); resolving in the database "
                        "until re-subscribed", exc)
        self._reset(live=False, in_flight={})
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.disconnect()  # shuts the socket down, waking the thread's select

    def _run(self) -> None:
        while not self.closed:
            try:
                self._subscribe()
                self._listen()
            except Exception as exc:
                with self.reading:
                    self._lose(exc)
            if not self.closed:
                time.sleep(RETRY_S)

    def _subscribe(self) -> None:
        cache = self.cache
        conn: Any = cache.subscriptions.make_connection()
        with self.reading:  # messages that arrive meanwhile wait in the socket
            try:
                conn.connect()
                conn.send_command("SUBSCRIBE", cache.channel)
                conn.read_response()
                found = cache.in_flight(keys=[cache.in_flight_key])
            except Exception:
                conn.disconnect()
                raise
            in_flight: dict[Model, dict[str, float]] = {}
            now = time.monotonic()
            for member, left_ms in zip(found[::2], found[1::2], strict=True):
                tenant_id, name, change = json.loads(member)
                in_flight.setdefault((tenant_id, name), {})[change] = now + int(left_ms) / 1000
            self.pinged = False
            self._reset(live=True, in_flight=in_flight)
            self.conn = conn

    def _listen(self) -> None:
        conn = self.conn
        while self.conn is conn and not self.closed:
            if select.select([conn._sock], [], [], HEARTBEAT_S)[0]:
                self.read()
                continue
            with self.reading:
                if self.pinged:
                    raise TimeoutError(f"no answer to a ping in {HEARTBEAT_S} s")
                conn.send_command("PING")
                self.pinged = True
        if self.conn is None and not self.closed:
            raise ConnectionError("the subscription was lost while reading it")

    def close(self) -> None:
        self.closed = True
        with self.reading:
            self._lose(ConnectionError("closed"))


def make_registry_cache(broker_url: str) -> RegistryCache:
    return RegistryCache(broker_url if broker_url.startswith(("redis://", "rediss://"))
                         else None)
