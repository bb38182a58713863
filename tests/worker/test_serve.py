"""`weightsmith serve`, `db upgrade` and `keys create` as real processes (embedded backends).

serve must migrate, print the URL and (first start only) a key it also saved with mode 0600,
run API + worker + beat, train a submitted job, stop every child on SIGTERM with exit code 0,
and exit non-zero, stopping the others, when a child dies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.cli.server_commands import SERVE_WORKER_NICENESS
from store.statuses import TERMINAL_STATUSES
from tests.worker.conftest import ROOT, xor_spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def niceness_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def command_of(pid: int) -> str:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append(int(entry.name))
    return kids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Serve:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSMITH_")}
        env.update(WEIGHTSMITH_DATA_DIR=str(data_dir), WEIGHTSMITH_HEARTBEAT_INTERVAL_S="1")
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(cli("serve", "--port", str(self.port)), env=env, cwd=ROOT,
                                     stdout=open(self.log, "wb"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise AssertionError(f"serve did not answer /healthz in {timeout}s\n{self.output()}")

    def kill(self) -> None:
        for pid in [self.proc.pid, *children_of(self.proc.pid)]:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def serves(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    try:
        yield started
    finally:
        for serve in started:
            serve.kill()


def test_serve_runs_everything_and_stops_cleanly(tmp_path: Path, serves: list[Serve]) -> None:
    data_dir = tmp_path / "data"
    serve = Serve(data_dir)
    serves.append(serve)
    serve.wait_ready()
    out = serve.output()
    assert f"http://127.0.0.1:{serve.port}" in out
    key_file = data_dir / "api_key"
    key = key_file.read_text().strip()
    assert key and key in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(children_of(serve.proc.pid)) == 3  # api, worker, beat

    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{serve.url}/v1/jobs", headers=headers).status_code == 200
    assert httpx.get(f"{serve.url}/v1/jobs").status_code == 401
    created = httpx.post(f"{serve.url}/v1/jobs", json=xor_spec(epochs=3), headers=headers)
    assert created.status_code == 202, created.text
    job_url = f"{serve.url}/v1/jobs/{created.json()['id']}"
    deadline = time.monotonic() + 90
    while (job := httpx.get(job_url, headers=headers).json())["status"] not in TERMINAL_STATUSES:
        assert time.monotonic() < deadline, serve.output()
        time.sleep(0.3)
    assert (job["status"], job["progress"]["epoch"]) == ("succeeded", 3), job
    # kombu warns of a broker URL without a host at every worker start (worker.celery_app)
    assert "No hostname was supplied" not in serve.output()
    # The training worker and its pool yield the cores to the API (SERVE_WORKER_NICENESS).
    ours = niceness_of(os.getpid())  # children start where the test runs (nice make test)
    for pid in children_of(serve.proc.pid):
        expected = max(ours, SERVE_WORKER_NICENESS) if " worker " in command_of(pid) else ours
        for process in [pid, *children_of(pid)]:
            assert niceness_of(process) == expected, command_of(process)

    kids = children_of(serve.proc.pid)
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=40) == 0, serve.output()
    assert [pid for pid in kids if alive(pid)] == []

    again = Serve(data_dir)  # second start: same key file, no new key printed
    serves.append(again)
    again.wait_ready()
    assert key_file.read_text().strip() == key
    assert key not in again.output() and "API key" not in again.output()


def test_serve_starts_a_child_that_died_again(tmp_path: Path, serves: list[Serve]) -> None:
    """A crashed worker no longer takes the API and beat down with it (issue 19); the
    supervisor's give-up after repeated crashes is tests/service/test_supervisor.py's."""
    serve = Serve(tmp_path / "data")
    serves.append(serve)
    serve.wait_ready()
    kids = children_of(serve.proc.pid)
    assert len(kids) == 3
    os.killpg(kids[1], signal.SIGKILL)  # the worker's group (started second)
    deadline = time.monotonic() + 40
    while (now := children_of(serve.proc.pid)) == kids or len(now) < 3:
        assert serve.proc.poll() is None, serve.output()
        assert time.monotonic() < deadline, serve.output()
        time.sleep(0.2)
    assert set(kids) - set(now) == {kids[1]} and len(set(now) - set(kids)) == 1, (kids, now)
    assert "worker exited with code -9; starting it again in 1 s" in serve.output()
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(timeout=40) == 0, serve.output()
    assert [pid for pid in [*kids, *now] if alive(pid)] == []


def test_db_upgrade_and_keys_create(tmp_path: Path) -> None:
    from store import keys
    from store.db import make_engine, make_session_factory

    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSMITH_")}
    env["WEIGHTSMITH_DATA_DIR"] = str(tmp_path / "data")
    up = subprocess.run(cli("db", "upgrade"), env=env, capture_output=True, text=True,
                        timeout=60, check=True)
    assert "head" in up.stdout
    made = subprocess.run(cli("keys", "create", "--tenant", "acme"), env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    key = made.stdout.strip().splitlines()[-1]
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'weightsmith.db'}")
    try:
        with make_session_factory(engine)() as s:
            tenant_id = keys.tenant_for_key(s, key)
            assert tenant_id is not None
            assert keys.tenant_for_key(s, key + "x") is None
    finally:
        engine.dispose()


def test_keys_list_and_revoke(tmp_path: Path) -> None:
    """`keys list` shows a tenant's keys by prefix; `keys revoke` makes one unusable."""
    from store import keys
    from store.db import make_engine, make_session_factory

    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSMITH_")}
    env["WEIGHTSMITH_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=60,
                              check=check)

    run("db", "upgrade")
    first = run("keys", "create", "--tenant", "acme").stdout.strip().splitlines()[-1]
    second = run("keys", "create", "--tenant", "acme").stdout.strip().splitlines()[-1]
    lines = run("keys", "list", "--tenant", "acme").stdout.strip().splitlines()
    assert len(lines) == 2 and all("revoked -" in line for line in lines)
    assert [line.split()[1] for line in lines] == [first[:8] + "...", second[:8] + "..."]
    assert first not in "".join(lines)
    key_id = lines[1].split()[0]
    assert run("keys", "revoke", "--tenant", "globex", key_id, check=False).returncode == 3
    assert "revoked" in run("keys", "revoke", "--tenant", "acme", key_id).stdout
    lines = run("keys", "list", "--tenant", "acme").stdout.strip().splitlines()
    assert "revoked -" in lines[0] and "revoked -" not in lines[1]
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'weightsmith.db'}")
    try:
        with make_session_factory(engine)() as s:
            assert keys.tenant_for_key(s, first) is not None
            assert keys.tenant_for_key(s, second) is None
    finally:
        engine.dispose()
    assert run("keys", "list", "--tenant", "nobody", check=False).returncode == 3


def test_every_server_option_says_its_default_in_its_help() -> None:
    import argparse

    from service.cli import build_parser

    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    for name in ("serve", "api", "worker", "beat"):
        options = [a for a in commands.choices[name]._actions if a.option_strings
                   and not isinstance(a, argparse._HelpAction)]
        assert options, name
        for action in options:
            text = commands.choices[name].format_help()
            assert action.help and "default" in action.help, (name, action.option_strings)
            if action.default is not None:
                assert f"(default: {action.default})" in " ".join(text.split()), (
                    name, action.option_strings)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_serves_on_the_port_and_host_given() -> None:
    dry = subprocess.run(["make", "-n", "run", "PORT=8123", "HOST=0.0.0.0"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "weightsmith serve --host 0.0.0.0 --port 8123" in dry
    plain = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    assert "weightsmith serve --host 127.0.0.1 --port 8000" in plain
