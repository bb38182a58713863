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

from store.statuses import TERMINAL_STATUSES

log = logging.getLogger(__name__)
BATCH = 500
Event = tuple[int, bytes]  # (seq, the event as SSE bytes)
HEADS_PER_QUERY = 500  # job ids per IN (...) list
# Streams the hub wakes per pass of the event loop. Each woken stream writes its events on the
# loop (~25 us); 200 streams of one job woken at once made one 5 ms pass at every commit,
# and every request that arrived meanwhile (predict, /healthz) waited for all of it. In
# slices, a request waits for at most one slice (issue 19).
WAKE_SLICE = 8


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

    def _retry(self) -> bytes:
        return f"retry: {int(self.timing.poll_seconds * 1000) + 1000}\n\n".encode()

    def __iter__(self) -> Iterator[bytes]:
        timing, after = self.timing, self.after
        started = last_sent = time.monotonic()
        yield self._retry()
        while True:
            events, status = self._poll(after)
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
        events, status = await loop.run_in_executor(None, self._poll, after)
        while True:
            if events:  # one body message for all of them: one write instead of one each
                yield b"".join(chunk for _, chunk in events)
                after = events[-1][0]
                last_sent = loop.time()
            if len(events) == BATCH:  # a backlog: read on, at our own position
                events, status = await loop.run_in_executor(None, self._poll, after)
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
                events, status = await loop.run_in_executor(None, self._poll, after)
            elif update is not None:
                events, status = update  # type: ignore[misc]
            else:
                events = []  # nothing happened: a heartbeat, or the end of the stream


Update = tuple[list["Event"], str | None]
News = dict[str, tuple[int, list["Event"]]]
POLL: Any = object()  # what EventHub.wait returns when a stream must read for itself


class EventHub:
    """One poller per event loop and database for every stream waiting on it.

    Each poll reads the heads of every followed job in one statement; for a job that moved
    it reads the new events once, from the earliest position any of its streams waits at,
    and hands each stream the events past its own position with the job's status. 200
    streams of one job cost one query per commit of that job, not 200.
    """

    _hubs: ClassVar[dict[tuple[int, int], EventHub]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, sessions: sessionmaker[Session],
                 poll_seconds: float) -> None:
        self.loop = loop
        self.sessions = sessions
        self.poll_seconds = poll_seconds
        self.waiters: dict[str, list[tuple[int, asyncio.Future[Any]]]] = {}
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
        `after`, its status), or POLL when they did not fit one read; None after `timeout`."""
        entry: tuple[int, asyncio.Future[Any]] = (after, self.loop.create_future())
        self.waiters.setdefault(job_id, []).append(entry)
        if self.task is None:
            self.task = self.loop.create_task(self._run())
        try:
            # asyncio.timeout, not wait_for: the hub's set_result wakes this task directly,
            # where wait_for adds a callback and a second future (one more loop pass each).
            async with asyncio.timeout(max(0.0, timeout)):
                return await entry[1]
        except TimeoutError:
            # News that landed as the timer fired is not dropped: the stream's position did
            # not move, so the next wait would only fetch it again.
            future = entry[1]
            return future.result() if future.done() and not future.cancelled() else None
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
        with self.sessions() as session:
            for i in range(0, len(job_ids), HEADS_PER_QUERY):
                heads.update(store_events.heads(session, job_ids[i:i + HEADS_PER_QUERY]))
            for job_id, (seq, _status) in heads.items():
                if seq > positions[job_id]:
                    rows = store_events.after(session, job_id, positions[job_id], limit=BATCH)
                    news[job_id] = (positions[job_id], encoded(rows))
        return heads, news

    async def _run(self) -> None:
        try:
            while self.waiters:
                await asyncio.sleep(self.poll_seconds)
                # Positions are taken here, on the loop: the executor's thread never reads
                # the waiters, which only the loop changes.
                positions = {job_id: min(after for after, _ in waiting)
                             for job_id, waiting in self.waiters.items() if waiting}
                if not positions:
                    break
                try:
                    heads, news = await self.loop.run_in_executor(None, self._read, positions)
                except Exception as exc:  # the database is away: streams time out, retry later
                    log.warning("event streams: polling job heads failed: %s", exc)
                    continue
                woken = 0
                for job_id in positions:
                    for future, update in self._updates(job_id, heads.get(job_id),
                                                        news.get(job_id)):
                        if future.done():  # timed out or left while earlier slices ran
                            continue
                        future.set_result(update)
                        woken += 1
                        if woken % WAKE_SLICE == 0:
                            await asyncio.sleep(0)
        finally:
            self.task = None

    def _updates(self, job_id: str, head: tuple[int, str] | None,
                 fetched: tuple[int, list[Event]] | None
                 ) -> list[tuple[asyncio.Future[Any], Update | Any]]:
        """What each stream waiting on `job_id` is to be woken with (none: it waits on)."""
        updates: list[tuple[asyncio.Future[Any], Update | Any]] = []
        for after, future in list(self.waiters.get(job_id, [])):
            if future.done():
                continue
            if head is None:  # the job is gone: the stream ends
                updates.append((future, ([], None)))
            elif head[0] <= after:
                if head[1] in TERMINAL_STATUSES:  # ended with nothing new for this stream
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
