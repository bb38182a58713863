"""EventStream followed asynchronously, as the ASGI front does (service/event_stream.py).

Streams at different positions of one job each receive exactly the events after their
position, in order, and end with the job; while they wait, the hub reads the job's head once
per poll for all of them and its new events once per change, not once per stream.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from service.event_stream import EventHub, EventStream, StreamTiming
from store import events as store_events
from store import jobs as store_jobs
from store import tenants

STREAMS = 6
THREADS = 2  # executor threads of the replay test: fewer than its streams per position


def parse(chunks: list[bytes]) -> list[int]:
    """The ids of the events in an SSE body."""
    text = b"".join(chunks).decode()
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


async def all_waiting(session_factory: Any, timing: StreamTiming, count: int) -> None:
    """Until `count` streams wait on this loop's hub (at most 10 s): a fixed sleep let a
    stream still in its first read, on a loaded machine, see a commit by itself."""
    loop = asyncio.get_running_loop()
    hub = EventHub.of(loop, session_factory, timing.poll_seconds)
    deadline = loop.time() + 10
    while sum(len(w) for w in hub.waiters.values()) < count:
        assert loop.time() < deadline, "the streams never all waited on the hub"
        await asyncio.sleep(0.01)


def test_streams_share_the_hubs_reads_and_each_gets_its_own_events(
        session_factory: Any) -> None:
    with session_factory.begin() as s:
        tenant = tenants.get_or_create(s, "acme").id
        job = store_jobs.create_job(s, tenant, {"name": "x"}, None)
        job_id = job.id
        for epoch in range(1, 5):
            store_events.append(s, job_id, "epoch", {"epoch": epoch})
    timing = StreamTiming(max_seconds=30.0, heartbeat_seconds=10.0, poll_seconds=0.05)
    starts = [0, 1, 2, 3, 4, 4]
    statements: list[str] = []
    engine = session_factory.kw["bind"]

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name.startswith("asyncio"):
            statements.append(statement)

    def commit(items: list[tuple[str, dict[str, Any]]], status: str | None = None) -> None:
        with session_factory.begin() as s:
            store_events.append_many(s, job_id, items)
            if status is not None:
                s.execute(sa.text("UPDATE jobs SET status = :s WHERE id = :i"),
                          {"s": status, "i": job_id})

    async def follow(after: int) -> list[bytes]:
        return [chunk async for chunk in EventStream(session_factory, job_id, after, timing)]

    async def main() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(follow(after)) for after in starts]
        await all_waiting(session_factory, timing, len(starts))  # backlogs sent
        sa.event.listen(engine, "before_cursor_execute", record)
        for epoch in range(5, 8):  # three commits of the worker, one event each
            await loop.run_in_executor(None, commit, [("epoch", {"epoch": epoch})])
            await asyncio.sleep(0.3)
        sa.event.remove(engine, "before_cursor_execute", record)
        await loop.run_in_executor(None, commit, [("status", {"status": "succeeded"})],
                                   "succeeded")
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)

    bodies = asyncio.run(main())
    for after, body in zip(starts, bodies, strict=True):
        assert parse(body) == list(range(after + 1, 9)), (after, body)
        assert body[0].startswith(b"retry: ")
    selects = [s for s in statements if s.lstrip().startswith("SELECT")]
    reads = [s for s in selects if "FROM job_events" in s]
    heads = [s for s in selects if "FROM jobs" in s]
    # One read of the new events per commit for all six streams, not one per stream.
    assert len(reads) == 3, statements
    assert 3 <= len(heads) <= 0.9 / 0.05 + 3, heads  # one per poll, whatever the streams


def _job(session_factory: Any) -> str:
    with session_factory.begin() as s:
        return str(store_jobs.create_job(s, tenants.get_or_create(s, "acme").id,
                                         {"name": "x"}, None).id)


def _commit(session_factory: Any, job_id: str, status: str | None = None) -> None:
    with session_factory.begin() as s:
        store_events.append_many(s, job_id, [("epoch", {"epoch": 1})])
        if status is not None:
            s.execute(sa.text("UPDATE jobs SET status = :s WHERE id = :i"),
                      {"s": status, "i": job_id})


async def counted_per_pass(counter: list[int], count: int) -> list[int]:
    """How many entries `counter` gains in each pass of the loop, until it holds `count`
    (at most 5 s)."""
    loop = asyncio.get_running_loop()
    per_pass: list[int] = []
    deadline = loop.time() + 5
    while len(counter) < count and loop.time() < deadline:
        before = len(counter)
        await asyncio.sleep(0)  # one pass of the loop
        per_pass.append(len(counter) - before)
    return per_pass


def test_the_hub_wakes_a_commits_streams_in_one_pass_when_quiet_in_slices_under_load(
        session_factory: Any, monkeypatch: Any) -> None:
    """With no request in flight, a pass can delay only the one request that arrives during
    it: a commit's streams are woken together (up to QUIET_SLICE). Under continuous load (a
    request in flight past QUIET_WAIT_S) no pass sends to more than WAKE_SLICE streams: 200
    streams woken at once made a 5 ms pass that every request in flight waited for (issue
    19). Every stream gets every event either way."""
    from service import event_stream
    from service.quiet import Quiet

    monkeypatch.setattr(event_stream, "QUIET_WAIT_S", 0.05)
    streams = 5 * event_stream.WAKE_SLICE
    job_id = _job(session_factory)
    timing = StreamTiming(max_seconds=30.0, heartbeat_seconds=10.0, poll_seconds=0.05)
    received: list[int] = []  # one entry per chunk of events any stream got

    async def follow() -> None:
        async for chunk in EventStream(session_factory, job_id, 0, timing):
            if chunk.startswith(b"id: "):
                received.append(1)

    async def main() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(follow()) for _ in range(streams)]
        await all_waiting(session_factory, timing, streams)
        await loop.run_in_executor(None, _commit, session_factory, job_id)
        quiet = await counted_per_pass(received, streams)
        await all_waiting(session_factory, timing, streams)  # every stream waits again
        serving = Quiet.of(loop).request()  # a request in flight throughout
        await loop.run_in_executor(None, _commit, session_factory, job_id)
        loaded = await counted_per_pass(received, 2 * streams)
        serving.done()
        await loop.run_in_executor(None, _commit, session_factory, job_id, "succeeded")
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        return quiet, loaded

    quiet, loaded = asyncio.run(main())
    assert len(received) == 3 * streams  # two commits' events and the final status
    assert sum(quiet) == streams and max(quiet) == streams, quiet
    assert sum(loaded) == streams and max(loaded) <= event_stream.WAKE_SLICE, loaded


def test_the_hub_wakes_no_stream_while_a_request_is_served(
        session_factory: Any, monkeypatch: Any) -> None:
    """Requests first (service/quiet.py): a commit's fan-out waits while the front serves a
    request, and goes out once it is answered; under continuous load, at QUIET_WAIT_S."""
    from service import event_stream
    from service.quiet import Quiet

    job_id = _job(session_factory)
    timing = StreamTiming(max_seconds=30.0, heartbeat_seconds=10.0, poll_seconds=0.05)
    received: list[float] = []  # loop time of each chunk of events any stream got

    async def follow() -> None:
        async for chunk in EventStream(session_factory, job_id, 0, timing):
            if chunk.startswith(b"id: "):
                received.append(asyncio.get_running_loop().time())

    async def until(count: int, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while len(received) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def main(streams: int) -> tuple[int, float, float]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(follow()) for _ in range(streams)]
        await all_waiting(session_factory, timing, streams)
        quiet = Quiet.of(loop)
        serving = quiet.request()
        await loop.run_in_executor(None, _commit, session_factory, job_id)
        await asyncio.sleep(0.5)  # ten polls' worth
        during = len(received)
        answered = loop.time()
        serving.done()
        await until(streams, 5.0)
        after_answer = max(received) - answered
        # Continuous load: a request in flight the whole time, the fan-out goes at its deadline.
        monkeypatch.setattr(event_stream, "QUIET_WAIT_S", 0.2)
        serving = quiet.request()
        committed = loop.time()
        await loop.run_in_executor(None, _commit, session_factory, job_id)
        await until(2 * streams, 5.0)
        under_load = max(received) - committed
        serving.done()
        await loop.run_in_executor(None, _commit, session_factory, job_id, "succeeded")
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        return during, after_answer, under_load

    monkeypatch.setattr(event_stream, "QUIET_WAIT_S", 5.0)
    streams = 2 * event_stream.WAKE_SLICE
    during, after_answer, under_load = asyncio.run(main(streams))
    assert during == 0
    assert after_answer < 0.5
    assert len(received) >= 2 * streams
    assert 0.2 <= under_load < 2.0


def test_heartbeats_come_from_the_hub_and_wait_while_a_request_is_served(
        session_factory: Any, monkeypatch: Any) -> None:
    """A stream's heartbeat (and its end) is sent by the hub, like its events, and not while
    the front serves a request: each stream's own timer used to wake it whatever the loop
    was doing."""
    from service import event_stream
    from service.quiet import Quiet

    monkeypatch.setattr(event_stream, "QUIET_WAIT_S", 5.0)
    job_id = _job(session_factory)
    streams = 5 * event_stream.WAKE_SLICE
    # A stream whose first read (on the executor, not gated) outlasts a heartbeat interval
    # sends that heartbeat itself: 0.3 s was outlasted on a machine loaded by three busy loops.
    timing = StreamTiming(max_seconds=30.0, heartbeat_seconds=0.6, poll_seconds=0.05)
    beats: list[int] = []

    async def follow() -> None:
        async for chunk in EventStream(session_factory, job_id, 0, timing):
            if chunk == b": heartbeat\n\n":
                beats.append(1)

    async def main() -> tuple[int, list[int]]:
        loop = asyncio.get_running_loop()
        serving = Quiet.of(loop).request()
        tasks = [asyncio.create_task(follow()) for _ in range(streams)]
        await asyncio.sleep(1.2)  # every heartbeat came due while the request is served
        during = len(beats)
        serving.done()
        per_pass = await counted_per_pass(beats, streams)
        await loop.run_in_executor(None, _commit, session_factory, job_id, "succeeded")
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        return during, per_pass

    during, per_pass = asyncio.run(main())
    assert during == 0
    assert sum(per_pass) >= streams


def test_streams_replaying_a_long_history_read_each_full_batch_once(
        session_factory: Any) -> None:
    """A job with 2.5 batches of events: 8 streams from the start, 3 from inside the first
    batch. The full batches from the start are read from the database once for all (the
    replay cache); positions that start elsewhere, and the partial tail, read for
    themselves; every stream gets every event after its position, once, in order."""
    from service.event_stream import BATCH

    with session_factory.begin() as s:
        tenant = tenants.get_or_create(s, "acme").id
        job_id = store_jobs.create_job(s, tenant, {"name": "x"}, None).id
        store_events.append_many(
            s, job_id, [("epoch", {"epoch": e}) for e in range(1, BATCH * 5 // 2 + 1)])
        s.execute(sa.text("UPDATE jobs SET status = 'succeeded' WHERE id = :i"), {"i": job_id})
    total = BATCH * 5 // 2
    timing = StreamTiming(max_seconds=30.0, heartbeat_seconds=10.0, poll_seconds=0.05)
    starts = [0] * 8 + [7] * 3
    reads: list[int] = []
    after_events = store_events.after

    def counted(s: Any, job: str, seq: int = 0, limit: int = 100) -> Any:
        reads.append(seq)
        return after_events(s, job, seq, limit)

    async def follow(after: int) -> list[bytes]:
        return [chunk async for chunk in EventStream(session_factory, job_id, after, timing)]

    async def main() -> list[list[bytes]]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(THREADS))
        return await asyncio.wait_for(
            asyncio.gather(*(follow(after) for after in starts)), timeout=30)

    store_events.after = counted  # type: ignore[assignment]
    try:
        bodies = asyncio.run(main())
    finally:
        store_events.after = after_events  # type: ignore[assignment]
    for after, body in zip(starts, bodies, strict=True):
        assert parse(body) == list(range(after + 1, total + 1))
    assert bodies[0] == bodies[1]  # the same bytes, cached or read
    # Executor threads reading at once may each miss a batch before the first fills the
    # cache: at most one read per thread for a full batch, not one per stream.
    for full in (0, BATCH, 7, 7 + BATCH):
        assert 1 <= reads.count(full) <= THREADS
    assert reads.count(2 * BATCH) == 8 and reads.count(7 + 2 * BATCH) == 3  # tails: no cache
