"""Processes the fault tests start, stop and restart themselves: a private redis-server and
the `weightsmith api` server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.worker.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server (append-only, no RDB) in a tmp dir, restartable on its port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait(lambda: self.ping(), "to answer PING")

    def ping(self) -> bool:
        import redis

        try:
            with contextlib.closing(redis.Redis.from_url(self.url, socket_timeout=1)) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.proc = None

    def wipe(self) -> None:
        """Delete the stopped server's append-only files: it comes back empty."""
        assert self.proc is None
        for path in self.dir.glob("appendonly*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _wait(self, ok: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on {self.port} did not {what}")
            time.sleep(0.1)


class ApiProcess:
    """`weightsmith api` (gunicorn) on a fixed port, killed and restarted by the test."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        log = open(self.log_dir / f"api-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "api", "--port", str(self.port),
             "--workers", "1", "--threads", "4"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"weightsmith api exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError("weightsmith api did not answer /healthz in time")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL gunicorn's master and workers at once (a crashed host, no graceful exit)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.proc = None


class ServedApi:
    """`weightsmith serve` or `weightsmith api` (its default workers) on SQLite in `data_dir`.

    `api` runs without a worker, so a submitted job stays queued; `serve` runs its own worker
    and beat. `key` is a key of the tenant "local" (serve's first-start key, or one made with
    `weightsmith keys create` for api).
    """

    def __init__(self, mode: str, data_dir: Path, **env: str) -> None:
        self.mode = mode
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, WEIGHTSMITH_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
        for name in ("WEIGHTSMITH_DATABASE_URL", "WEIGHTSMITH_BROKER_URL"):
            self.env.pop(name, None)
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "service.cli", *args]

    def start(self, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.mode == "api":
            subprocess.run(self._cli("db", "upgrade"), env=self.env, cwd=ROOT, check=True,
                           capture_output=True)
            out = subprocess.run(self._cli("keys", "create", "--tenant", "local"),
                                 env=self.env, cwd=ROOT, check=True, capture_output=True,
                                 text=True)
            self.key = out.stdout.strip().splitlines()[-1]
        log = open(self.data_dir / f"{self.mode}.log", "wb")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(self._cli(self.mode, "--port", str(self.port)),
                                     cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"weightsmith {self.mode} exited: {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"weightsmith {self.mode} did not answer: {self.log()}")
            time.sleep(0.2)
        if self.mode == "serve":
            self.key = (self.data_dir / "api_key").read_text().strip()

    def log(self) -> str:
        path = self.data_dir / f"{self.mode}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        self.proc = None
