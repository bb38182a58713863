"""The body of `GET /v1/jobs/{id}/events`: a job's events as Server-Sent Events.

`EventStream` is iterable both ways. Behind the ASGI front (service/front.py, both server
modes) it is iterated asynchronously: between events a stream waits on the process's
`EventHub`, which asks the database once per poll interval for the heads of every job being
followed (`store.events.heads`, one statement for all of them) and wakes only the streams
whose job moved. So a stream holds no request thread while it waits, and 200 idle streams
cost one query per interval rather than 200 (issue 19). A plain WSGI server (the Flask test
client) iterates it synchronously, polling on its own thread as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.orm import Session, sessionmaker

from service.model_cache import ModelCache
from service.quiet import Quiet
from store.statuses import TERMINAL_STATUSES

log = logging.getLogger(__name__)
BATCH = 500
Event = tuple[int, bytes]  # (seq, the event as SSE bytes)
HEADS_PER_QUERY = 500  # job ids per IN (...) list
# Streams the hub wakes per pass of the event loop. Each woken stream writes its events on the
# loop (~25 us). Under continuous load (requests in flight past QUIET_WAIT_S), 200 streams of
# one job woken at once made one 5 ms pass at every commit that every request in flight
# waited for: then a pass wakes WAKE_SLICE. In a quiet moment a pass can only delay the one
# request that arrives during it, and each further pass delays one more: then a pass wakes
# up to QUIET_SLICE. With 200 streams following a training job, one client's predict p99 rose
# from 0.70-0.73 to 0.83-0.88 ms with one pass, to 0.96-1.25 ms with passes of 8 (issue 19).
WAKE_SLICE = 8
QUIET_SLICE = 256
# How long the hub's work waits for no request to be in flight before going ahead anyway
# (service/quiet.py): streams are that much late under continuous load at the most.
QUIET_WAIT_S = 0.1
# A stream's own timer fires this many polls after its heartbeat was due: only if the hub has
# stopped, since the hub wakes streams whose time is up at its first poll after it.
TIMER_SLACK_POLLS = 4
# A stream opened without Last-Event-ID replays its job's events from the start, a BATCH at a
# time, on the executor. 200 streams opened together on a job with ~4,000 events read and
# encoded that history 200 times, on threads holding the GIL while the loop waited: /healthz
# p99 rose to 43-91 ms (issue 19). A full batch never changes (events are only appended, in
# sequence order under the job's row lock), so the process keeps full batches, encoded, for
# every stream that replays them: at most REPLAY_BYTES of event bytes, least recently used out.
REPLAY_BYTES = 32 << 20


def _event_bytes(events: list[Event]) -> int:
    return sum(len(chunk) for _, chunk in events)


REPLAYS = ModelCache(None, max_bytes=REPLAY_BYTES, size_of=_event_bytes)


@dataclass(frozen=True)
class StreamTiming:
    """How long a stream lasts, how often it sends a heartbeat, how often it polls."""

    max_seconds: float
    heartbeat_seconds: float
    poll_seconds: float


def format_event(seq: int, kind: str, data: Any) -> str:
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def encoded(rows: Any) -> list[Event]:
    """Event rows as (seq, their SSE bytes), encoded once where they are read: 200 streams of
    one job share the hub's list, so each event is serialised once, not once per stream."""
    return [(int(r.seq), format_event(int(r.seq), str(r.type), r.data).encode()) for r in rows]


class EventStream:
    """The events of `job_id` after sequence `after`, until the job ends or time runs out."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, after: int,
                 timing: StreamTiming) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.after = after
        self.timing = timing

    def _poll(self, after: int) -> tuple[list[Event], str | None]:
        """Events after `after`, and the job's status read in the same session."""
        from store import events as store_events

        with self.sessions() as session:
            rows = store_events.after(session, self.job_id, after, limit=BATCH)
            head = store_events.heads(session, [self.job_id]).get(self.job_id)
        return encoded(rows), (head[1] if head else None)

    def _next_batch(self, after: int) -> tuple[list[Event], str | None]:
        """`_poll` through the process's replay cache. A cached batch is full, so the stream
        reads on without looking at the status, which comes back None."""
        key = (type(self), id(self.sessions), self.job_id, after)
        events: list[Event] | None = REPLAYS.get(key)
        if events is not None:
            return events, None
        events, status = self._poll(after)
        if len(events) == BATCH:
            REPLAYS.put(key, events)
        return events, status

    def _retry(self) -> bytes:
        return f"retry: {int(self.timing.poll_seconds * 1000) + 1000}\n\n".encode()

    def __iter__(self) -> Iterator[bytes]:
        timing, after = self.timing, self.after
        started = last_sent = time.monotonic()
        yield self._retry()
        while True:
            events, status = self._next_batch(after)
            for seq, chunk in events:
                yield chunk
                after = seq
                last_sent = time.monotonic()
            if len(events) == BATCH:
                continue
            if status is None or status in TERMINAL_STATUSES:
                return
            now = time.monotonic()
            if now - started >= timing.max_seconds:
                return
            if now - last_sent >= timing.heartbeat_seconds:
                yield b": heartbeat\n\n"
                last_sent = now
            time.sleep(timing.poll_seconds)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._follow()

    async def _wait(self, loop: asyncio.AbstractEventLoop, after: int,
                    timeout: float) -> Update | Any | None:
        """Until there is news past `after`: (events, status), POLL (read for yourself) or
        None (`timeout` passed). Jobs wait on the process's EventHub."""
        hub = EventHub.of(loop, self.sessions, self.timing.poll_seconds)
        return await hub.wait(self.job_id, after, timeout=timeout)

    async def _follow(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        timing, after = self.timing, self.after
        started = last_sent = loop.time()
        yield self._retry()
        # A short query on the loop's default executor, not on a request thread.
        events, status = await loop.run_in_executor(None, self._next_batch, after)
        while True:
            if events:  # one body message for all of them: one write instead of one each
                yield b"".join(chunk for _, chunk in events)
                after = events[-1][0]
                last_sent = loop.time()
            if len(events) == BATCH:  # a backlog: read on, at our own position
                events, status = await loop.run_in_executor(None, self._next_batch, after)
                continue
            if status is None or status in TERMINAL_STATUSES:
                return
            now = loop.time()
            if now - started >= timing.max_seconds:
                return
            if now - last_sent >= timing.heartbeat_seconds:
                yield b": heartbeat\n\n"
                last_sent = now
            update = await self._wait(loop, after, timeout=min(
                timing.heartbeat_seconds - (now - last_sent),
                timing.max_seconds - (now - started)))
            if update is POLL:
                events, status = await loop.run_in_executor(None, self._next_batch, after)
            elif update is not None:
                events, status = update  # type: ignore[misc]
            else:
                events = []  # nothing happened: a heartbeat, or the end of the stream


Update = tuple[list["Event"], str | None]
News = dict[str, tuple[int, list["Event"]]]
POLL: Any = object()  # what EventHub.wait returns when a stream must read for itself
Waiter = tuple[int, float, "asyncio.Future[Any]"]  # (position, loop time it is due, wake-up)


class EventHub:
    """One poller per event loop and database for every stream waiting on it.

    Each poll reads the heads of every followed job in one statement; for a job that moved
    it reads the new events once, from the earliest position any of its streams waits at,
    and hands each stream the events past its own position with the job's status. 200
    streams of one job cost one query per commit of that job, not 200. It also wakes the
    streams whose heartbeat or end is due. Its reads and its wake-ups wait while the front
    serves a request (service/quiet.py): a stream can be late, a predict call should not be.
    """

    _hubs: ClassVar[dict[tuple[int, int], EventHub]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, sessions: sessionmaker[Session],
                 poll_seconds: float) -> None:
        self.loop = loop
        self.sessions = sessions
        self.poll_seconds = poll_seconds
        self.waiters: dict[str, list[Waiter]] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, sessions: sessionmaker[Session],
           poll_seconds: float) -> EventHub:
        key = (id(loop), id(sessions))
        hub = cls._hubs.get(key)
        if hub is None or hub.loop is not loop:
            hub = cls._hubs[key] = cls(loop, sessions, poll_seconds)
        return hub

    async def wait(self, job_id: str, after: int, timeout: float) -> Update | Any | None:
        """Once the job has events after `after`, ends, or is gone: (its events after
        `after`, its status), or POLL when they did not fit one read; None once `timeout`
        has passed (at the first poll after it)."""
        until = self.loop.time() + max(0.0, timeout)
        entry: Waiter = (after, until, self.loop.create_future())
        self.waiters.setdefault(job_id, []).append(entry)
        if self.task is None:
            self.task = self.loop.create_task(self._run())
        try:
            # The hub itself wakes a stream whose time is up, with its other wake-ups: when
            # no request is being served, and in its slices (streams opened together, as
            # after a restart, come due together). This timer fires only if the hub stopped
            # polling: its slack outlasts the hub's own waits for quiet, one before the read
            # and one before the wake-up.
            slack = TIMER_SLACK_POLLS * self.poll_seconds + 2 * QUIET_WAIT_S
            async with asyncio.timeout_at(until + slack):
                return await entry[2]
        except TimeoutError:
            return None
        finally:
            waiting = self.waiters.get(job_id, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self.waiters.pop(job_id, None)

    def _read(self, positions: dict[str, int]) -> tuple[dict[str, tuple[int, str]], News]:
        """The heads of the jobs, and for each that moved past its earliest waiting
        position, the events after that position (from, events); one session."""
        from store import events as store_events

        job_ids = list(positions)
        heads: dict[str, tuple[int, str]] = {}
        news: News = {}
        # The heads on a plain connection of the sessions' engine (the same read-only
        # options), not in an ORM session: a session's own bookkeeping was most of the poll
        # (0.17 ms of CPU against 0.07 ms; 1.2-1.5 ms in `serve`, twice a second). One
        # statement, so it needs no transaction of its own to be consistent.
        with self.sessions.kw["bind"].connect() as connection:
            for i in range(0, len(job_ids), HEADS_PER_QUERY):
                heads.update(store_events.heads(connection, job_ids[i:i + HEADS_PER_QUERY]))
        moved = [job_id for job_id, (seq, _) in heads.items() if seq > positions[job_id]]
        if moved:
            with self.sessions() as session:
                for job_id in moved:
                    rows = store_events.after(session, job_id, positions[job_id], limit=BATCH)
                    news[job_id] = (positions[job_id], encoded(rows))
        return heads, news

    async def _run(self) -> None:
        quiet = Quiet.of(self.loop)
        try:
            while self.waiters:
                await asyncio.sleep(self.poll_seconds)
                # Requests first: the read takes the GIL on the executor's thread for a while.
                await quiet.wait(self.loop.time() + QUIET_WAIT_S)
                # Positions are taken here, on the loop: the executor's thread never reads
                # the waiters, which only the loop changes.
                positions = {job_id: min(entry[0] for entry in waiting)
                             for job_id, waiting in self.waiters.items() if waiting}
                if not positions:
                    break
                try:
                    heads, news = await self.loop.run_in_executor(None, self._read, positions)
                except Exception as exc:  # the database is away: streams time out, retry later
                    log.warning("event streams: polling job heads failed: %s", exc)
                    heads, news = None, {}
                now = self.loop.time()
                updates = [update for job_id in positions for update in self._updates(
                    job_id, heads, news.get(job_id), now)]
                await self._wake(updates, quiet, now + QUIET_WAIT_S)
        finally:
            self.task = None

    async def _wake(self, updates: list[tuple[asyncio.Future[Any], Update | Any]],
                    quiet: Quiet, deadline: float) -> None:
        """Wake the streams a slice per loop pass, each slice when no request is being served:
        QUIET_SLICE of them then; WAKE_SLICE once `deadline` passed (under continuous load
        streams are late, not starved, and no pass is long)."""
        start = 0
        while start < len(updates):
            size = QUIET_SLICE if await quiet.wait(deadline) else WAKE_SLICE
            for future, update in updates[start:start + size]:
                if not future.done():  # timed out or left while earlier slices ran
                    future.set_result(update)
            start += size
            await asyncio.sleep(0)  # the woken streams write in the next pass

    def _updates(self, job_id: str, heads: dict[str, tuple[int, str]] | None,
                 fetched: tuple[int, list[Event]] | None, now: float
                 ) -> list[tuple[asyncio.Future[Any], Update | Any]]:
        """What each stream waiting on `job_id` is to be woken with (none: it waits on).
        `heads` None: the read failed, and only streams whose time is up are woken."""
        updates: list[tuple[asyncio.Future[Any], Update | Any]] = []
        head = None if heads is None else heads.get(job_id)
        for after, until, future in list(self.waiters.get(job_id, [])):
            if future.done():
                continue
            if heads is None or (head is not None and head[0] <= after
                                 and head[1] not in TERMINAL_STATUSES):
                if until <= now:  # nothing new: a heartbeat is due, or the stream's end
                    updates.append((future, None))
            elif head is None:  # the job is gone: the stream ends
                updates.append((future, ([], None)))
            elif head[0] <= after:  # ended with nothing new for this stream
                updates.append((future, ([], head[1])))
            elif fetched is None or fetched[0] > after:
                updates.append((future, POLL))  # it began waiting after positions were taken
            else:
                events = fetched[1]
                mine = [e for e in events if e[0] > after]
                # A full batch may stop short of the head: the stream reads on by itself.
                complete = len(events) < BATCH or bool(mine and mine[-1][0] >= head[0])
                updates.append((future, (mine, head[1]) if complete else POLL))
        return updates
