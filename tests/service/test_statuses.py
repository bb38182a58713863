"""Job statuses and the status event have one owner, store/statuses.py: the dashboard's job
page, the CLI, the API schema and every status event read it."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from service.cli.client_view import STATUS_STYLE
from service.schemas.jobs import JobOut
from store.statuses import JOB_STATUSES, TERMINAL_STATUSES, status_event


def test_the_job_page_carries_the_terminal_statuses_its_script_stops_on(
    client: FlaskClient,
) -> None:
    page = client.get("/jobs/job_x").get_data(as_text=True)
    found = re.search(r'data-terminal-statuses="([^"]*)"', page)
    assert found is not None and found.group(1).split() == list(TERMINAL_STATUSES)
    script = client.get("/ui/static/dashboard/job.js").get_data(as_text=True)
    assert "terminalStatuses" in script and "succeeded" not in script


def test_the_sweep_page_carries_the_terminal_statuses_its_script_stops_on(
    client: FlaskClient,
) -> None:
    page = client.get("/sweeps/sw_x").get_data(as_text=True)
    found = re.search(r'data-terminal-statuses="([^"]*)"', page)
    assert found is not None and found.group(1).split() == list(TERMINAL_STATUSES)
    script = client.get("/ui/static/dashboard/sweep.js").get_data(as_text=True)
    assert "TERMINAL.has(" in script and "cancelled" not in script


def test_the_api_schema_and_the_cli_know_every_status() -> None:
    schema = JobOut.model_json_schema()["properties"]["status"]
    assert schema["enum"] == list(JOB_STATUSES)
    assert list(STATUS_STYLE) == list(JOB_STATUSES)


def test_a_status_event_always_carries_the_reasons() -> None:
    assert status_event("queued") == (
        "status", {"status": "queued", "stop_reason": None, "failure_reason": None})
    assert status_event("running", attempt=2)[1] == {
        "status": "running", "stop_reason": None, "failure_reason": None, "attempt": 2}
    with pytest.raises(ValueError, match="unknown status 'done'"):
        status_event("done")
