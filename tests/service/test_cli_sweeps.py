"""`weightsmith sweep ...` over real HTTP, with a thread that steps sweeps and runs their
trials with the worker's own code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config.settings import Settings
from tests.service.test_cli_client import env, run  # noqa: F401 - fixtures
from tests.service.test_sweeps import body
from tests.worker.sweep_helpers import Queue


@pytest.fixture
def sweep_worker(session_factory: Any, settings: Settings) -> Iterator[None]:
    from store import sweeps
    from store.models import Job
    from worker.runner import JobRunner
    from worker.sweep_tasks import run_step

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            with session_factory() as s:
                active = sweeps.active_ids(s)
            for sweep_id in active:
                run_step(Queue(), session_factory, settings, sweep_id)
            with session_factory() as s:
                queued = s.scalars(sa.select(Job.id).where(Job.status == "queued")).all()
            for job_id in queued:
                JobRunner(session_factory, settings, job_id, "cli-sweep-worker").run()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(30)


def test_submit_watch_show_trials(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  env: str, sweep_worker: None) -> None:  # noqa: F811
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(body()))
    code, out, _ = run(capsys, "sweep", "submit", str(path), "--watch", "--json")
    assert code == 0, out
    sweep = json.loads(out.strip().splitlines()[-1])
    assert sweep["status"] == "succeeded" and sweep["trials"]["total"] == 3
    code, out, _ = run(capsys, "sweep", "show", sweep["id"])
    assert code == 0 and sweep["id"] in out and "succeeded" in out
    code, out, _ = run(capsys, "sweep", "trials", sweep["id"], "--order", "best", "--json")
    items = json.loads(out)
    assert code == 0 and len(items) == 3 and items[0]["index"] == sweep["best"]["trial"]
    code, _, err = run(capsys, "sweep", "cancel", sweep["id"])
    assert code == 3 and "409" in err


def test_a_bad_space_exits_3_naming_the_path(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path, env: str) -> None:  # noqa: F811
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(body(space={"optimizer.nope": {"uniform": [0, 1]}})))
    code, _, err = run(capsys, "sweep", "submit", str(path))
    assert code == 3 and 'space["optimizer.nope"]: no such field' in err


def test_the_client_follows_a_sweep_s_events_to_its_end(env: str, api_key: str,  # noqa: F811
                                                         sweep_worker: None) -> None:
    from service.client import WeightsmithClient

    with WeightsmithClient(env, api_key) as client:
        sweep = client.submit_sweep(body())
        kinds = [event.event for event in client.sweep_events(sweep["id"])]
        assert kinds[0] == "status" and kinds[-1] == "sweep_finished"
        assert kinds.count("trial_finished") == 3
        assert client.get_sweep(sweep["id"])["status"] == "succeeded"
        later = [e.id for e in client.sweep_events(sweep["id"], last_event_id=len(kinds) - 1)]
        assert later == [len(kinds)]
        assert [s["id"] for s in client.list_sweeps()] == [sweep["id"]]
