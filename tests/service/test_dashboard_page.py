"""The dashboard's job page takes the terminal statuses from store.statuses (their one owner)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from store.statuses import TERMINAL_STATUSES


def test_the_job_page_carries_the_terminal_statuses_its_script_stops_on(
    client: FlaskClient,
) -> None:
    page = client.get("/jobs/job_x").get_data(as_text=True)
    found = re.search(r'data-terminal-statuses="([^"]*)"', page)
    assert found is not None and found.group(1).split() == list(TERMINAL_STATUSES)
    script = client.get("/ui/static/dashboard/job.js").get_data(as_text=True)
    assert "dataset.terminalStatuses" in script and "succeeded" not in script
