"""A 1 GiB dataset through the resumable upload, its connection killed half-way, resumed.

Usage: ``.venv/bin/python benchmarks/service/bench_upload_resume.py [--quick]``

Issue 18, "Show": a 1 GiB upload through `/v1/uploads` with a killed connection half-way,
resumed, sha256 equal. The API runs as deployed (`weightsmith api`: gunicorn's asyncio worker
and the ASGI front of service/front.py) on a scratch PostgreSQL database.

1. a 1 GiB `.npz` (X: 262,144 x 1,024 float32; y: int64) is written to a temporary folder;
2. `POST /v1/uploads`, then pieces of 64 MiB by `service.client.WeightsmithClient.send_piece`
   up to half the file;
3. the next piece's headers and half its body go out on a raw socket, which is then closed;
4. `GET /v1/uploads/{id}` must say exactly half arrived (nothing of the killed piece kept);
5. `WeightsmithClient.upload_dataset(path, resume=id)` sends the rest and makes the dataset;
   its sha256 must be the file's, and the stored arrays (read back as the worker reads them)
   must equal the ones written.

Reported: the throughput of the pieces, the time to make the dataset, and the API worker's
peak resident memory (VmHWM), against the file's size: the file or its arrays are held once.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np

FEATURES = 1024
PIECE = 64 * 1024 * 1024


def api_peak_rss(port: int) -> int:
    """The largest VmHWM among the processes listening on or forked by the API (bytes)."""
    import os

    best = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"gunicorn" not in cmdline or str(port).encode() not in cmdline:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                best = max(best, int(line.split()[1]) * 1024)
    return best


def kill_mid_piece(port: int, key: str, upload_id: str, data: bytes, first: int,
                   total: int) -> None:
    """Send one piece's headers and half its body, then close the connection."""
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall((f"PUT /v1/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Range: bytes {first}-{first + len(data) - 1}/{total}\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n").encode())
        raw.sendall(data[:len(data) // 2])


def main() -> None:
    import subprocess

    from service.client import WeightsmithClient

    args = harness.parse(harness.parser(__doc__))
    rows = (1 << 30) // (FEATURES * 4) // (16 if args.quick else 1)
    port = harness.free_port()
    with harness.scratch_postgres() as db, \
            tempfile.TemporaryDirectory(prefix="ws-upload-") as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        X = rng.random((rows, FEATURES), dtype=np.float32)
        y = rng.integers(0, 10, rows)
        path = folder / "big.npz"
        np.savez(path, X=X, y=y)
        size = path.stat().st_size
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(1 << 24):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        print(f"file {size / 2**30:.3f} GiB ({size} bytes), sha256 {sha256[:16]}...; "
              f"load {harness.load()}", flush=True)
        env = harness.service_env(folder, db, "filesystem://",
                                  WEIGHTSMITH_RATE_LIMIT="1000000 per second")
        cli = [sys.executable, "-m", "service.cli"]
        out = subprocess.run([*cli, "keys", "create", "--tenant", "bench"], env=env,
                             check=True, cwd=harness.ROOT, capture_output=True, text=True)
        key = out.stdout.strip().splitlines()[-1]
        with harness.child([*cli, "api", "--port", str(port), "--workers", "1"],
                           "upload-resume", env):
            harness.wait_port(port, 90)
            with WeightsmithClient(f"http://127.0.0.1:{port}", key, timeout=600) as client:
                upload = client.start_upload(size, "big.npz")
                half = size // 2 // PIECE * PIECE
                t0 = time.perf_counter()
                with open(path, "rb") as file:
                    for first in range(0, half, PIECE):
                        file.seek(first)
                        client.send_piece(upload["id"], file.read(PIECE), first, size)
                    file.seek(half)
                    kill_mid_piece(port, key, upload["id"], file.read(PIECE), half, size)
                t1 = time.perf_counter()
                time.sleep(1.0)  # the front drops the body it never got whole
                received = client.get_upload(upload["id"])["received_bytes"]
                print(f"killed the piece at {half}: the server has {received} bytes"
                      f" ({'nothing of it kept' if received == half else 'WRONG'})", flush=True)
                t2 = time.perf_counter()
                body = client.upload_dataset(path, resume=upload["id"], piece_bytes=PIECE)
                t3 = time.perf_counter()
            peak = api_peak_rss(port)
        from functools import partial

        from core.datasets import stored
        from store import datasets
        from store.db import make_engine, make_session_factory

        engine = make_engine(db)
        with make_session_factory(engine)() as s:
            tenant = datasets.get(s, _tenant(s, body["id"]), body["id"])
            assert tenant is not None
            arrays = stored.load(partial(datasets.read_into, s, tenant.tenant_id, body["id"]))
        engine.dispose()
        assert arrays is not None
        same = bool(np.array_equal(arrays[0], X) and np.array_equal(arrays[1], y))
    sent = size - half
    summary: dict[str, Any] = {
        "bytes": size, "sha256_equal": body["sha256"] == sha256, "arrays_equal": same,
        "killed_at": half, "received_after_kill": received,
        "first_half_s": t1 - t0, "resume_and_dataset_s": t3 - t2,
        "first_half_mib_s": half / 2**20 / (t1 - t0), "api_peak_rss_bytes": peak,
        "load": harness.load()}
    harness.print_table(
        f"{size / 2**30:.2f} GiB upload in {PIECE >> 20} MiB pieces, killed half-way and "
        "resumed (weightsmith api on PostgreSQL)",
        ["what", "value"],
        [["sha256 of the dataset == the file's", summary["sha256_equal"]],
         ["stored arrays == the arrays written", same],
         ["bytes kept of the killed piece", received - half],
         ["first half: MiB/s", round(summary["first_half_mib_s"], 1)],
         ["resume + parse + store the dataset: s", round(t3 - t2, 2)],
         ["API peak RSS / file size", round(peak / size, 2)],
         ["load average", summary["load"]]])
    harness.write_results("bench_upload_resume", summary)
    del sent


def _tenant(s: Any, dataset_id: str) -> str:
    from store.models import Dataset

    row = s.get(Dataset, dataset_id)
    return str(row.tenant_id)


if __name__ == "__main__":
    main()
