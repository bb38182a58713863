"""The Python client of the Weightsmith HTTP API (docs/api.md), used by the CLI and the tests.

    client = WeightsmithClient("http://127.0.0.1:8000", api_key)
    job = client.submit(spec)
    for event in client.events(job["id"]):
        print(event.event, event.data)

Every non-2xx answer raises :class:`WeightsmithAPIError` carrying the problem+json document.
`events` follows the Server-Sent Events stream and reconnects with `Last-Event-ID` when the
connection drops or the server ends a long stream, so no event is lost or repeated.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from store.statuses import TERMINAL_STATUSES

# Transport hiccups after which an event stream is reopened rather than given up on.
RECONNECTABLE = (httpx.TransportError,)


# A 429 or 503 says when to come back; scripts should not have to. Longer waits are the
# caller's call.
RATE_LIMIT_RETRIES = 3
MAX_RETRY_AFTER_S = 10.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Files larger than this go to the server in pieces through /v1/uploads (docs/api.md): each
# piece must arrive within the server's body timeout, and a broken connection costs one piece.
PIECES_FROM = 32 * 1024 * 1024
PIECE_BYTES = 16 * 1024 * 1024
PIECE_RETRIES = 5  # broken connections in a row before an upload gives up


@contextlib.contextmanager
def _opened(source: str | Path | bytes) -> Iterator[Any]:
    """`source` as a seekable binary file: bytes in memory, or the file opened."""
    if isinstance(source, bytes):
        yield io.BytesIO(source)
        return
    with open(source, "rb") as file:
        yield file


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying (Retry-After in seconds), or None: do not retry.

    A 429 was refused before anything happened. A 503 (the database unreachable) may have
    met a connection that dropped mid-statement, so only a request that cannot do anything
    twice is retried: a safe method, or one carrying an Idempotency-Key.
    """
    status = response.status_code
    if status == 503:
        request = response.request
        if request.method not in SAFE_METHODS and "Idempotency-Key" not in request.headers:
            return None
    elif status != 429:
        return None
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):  # absent, or an HTTP date: leave it to the caller
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else None


class WeightsmithAPIError(Exception):
    """A problem+json answer (RFC 9457): status, title, detail, errors [{field, message}]."""

    def __init__(self, status: int, title: str, detail: str = "",
                 errors: list[dict[str, Any]] | None = None, type: str = "about:blank",
                 body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.type = type
        self.body = body or {}
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> WeightsmithAPIError:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            text = response.text[:500] if response.content else ""
            return cls(response.status_code, response.reason_phrase or "error", text)
        return cls(
            status=int(body.get("status", response.status_code)),
            title=str(body.get("title", response.reason_phrase or "error")),
            detail=str(body.get("detail", "")),
            errors=body.get("errors") if isinstance(body.get("errors"), list) else None,
            type=str(body.get("type", "about:blank")),
            body=body,
        )


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: `id` is the job's event sequence, `event` "status" or "epoch"."""

    id: int | None
    event: str
    data: Any = field(default=None)


def parse_sse(lines: Iterator[str]) -> Iterator[Event | int]:
    """Events from the lines of a text/event-stream; an int is a `retry:` delay in ms."""
    data: list[str] = []
    kind, ident = "message", None
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield Event(ident, kind, payload)
            data, kind, ident = [], "message", None
            continue
        if line.startswith(":"):
            continue  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and value.isdigit():
            ident = int(value)
        elif name == "retry" and value.isdigit():
            yield int(value)


DEFAULT_URL = "http://127.0.0.1:8000"


def server_url(url: str | None = None) -> str:
    """The server a client talks to: `url`, else $WEIGHTSMITH_URL, else the local default."""
    return (url or os.environ.get("WEIGHTSMITH_URL") or DEFAULT_URL).rstrip("/")


class WeightsmithClient:
    """A thin, typed wrapper of every endpoint; `url` and `api_key` default to the environment
    (`WEIGHTSMITH_URL`, `WEIGHTSMITH_API_KEY`). `transport` lets tests talk to a WSGI app."""

    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = server_url(url)
        self.api_key = api_key if api_key is not None else os.environ.get("WEIGHTSMITH_API_KEY")
        headers = {"Accept": "application/json", "User-Agent": "weightsmith-client/1"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WeightsmithClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = self._http.request(method, path, **kwargs)
            wait = retry_after(response)
            if wait is None or attempt == RATE_LIMIT_RETRIES:
                break
            time.sleep(wait)
        if response.is_error:
            raise WeightsmithAPIError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self._json("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # -- health and datasets ------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def upload_dataset(self, source: str | Path | bytes, *, filename: str | None = None,
                       name: str | None = None, target: str | None = None,
                       features_only: bool = False,
                       progress: Callable[[int, int], None] | None = None,
                       piece_bytes: int | None = None, resume: str | None = None
                       ) -> dict[str, Any]:
        """Upload a CSV, NPZ or JSON data set (a path, or bytes with a `filename` for its type);
        `features_only`: without a target, for batch predictions only.

        A file over `PIECES_FROM` bytes (or any, given `resume`: an upload id to continue)
        goes through `/v1/uploads` in pieces of `piece_bytes` (default `PIECE_BYTES`), each
        read from the file as it is sent; a piece whose connection breaks is sent again from
        the offset the server reports. `progress(sent, total)` is called as bytes are accepted.
        """
        if isinstance(source, bytes):
            size, filename = len(source), filename or "data.csv"
        else:
            path = Path(source)
            size, filename = path.stat().st_size, filename or path.name
        if size <= PIECES_FROM and resume is None:
            form = {k: v for k, v in (("name", name), ("target", target),
                                      ("features_only", "true" if features_only else None))
                    if v is not None}
            with _opened(source) as file:
                files = {"file": (filename, file, "application/octet-stream")}
                body = self._json("POST", "/v1/datasets", files=files, data=form)
            if progress is not None:
                progress(size, size)
            return body
        upload = self.get_upload(resume) if resume else self.start_upload(size, filename)
        with _opened(source) as file:
            self._send_pieces(upload, file, piece_bytes or PIECE_BYTES, progress)
        request = {"upload_id": upload["id"], "name": name, "target": target,
                   "features_only": features_only or None}
        return self._json("POST", "/v1/datasets",
                          json={k: v for k, v in request.items() if v is not None})

    def start_upload(self, size_bytes: int, filename: str | None = None) -> dict[str, Any]:
        """Start an upload in pieces (`POST /v1/uploads`)."""
        return self._json("POST", "/v1/uploads",
                          json={"size_bytes": size_bytes, "filename": filename})

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """An upload's state: `received_bytes` is where to resume."""
        return self._json("GET", f"/v1/uploads/{upload_id}")

    def send_piece(self, upload_id: str, data: bytes, first: int, total: int
                   ) -> dict[str, Any]:
        """Send bytes `first`..`first + len(data) - 1` of an upload of `total` bytes."""
        header = f"bytes {first}-{first + len(data) - 1}/{total}"
        return self._json("PUT", f"/v1/uploads/{upload_id}", content=data, headers={
            "Content-Range": header, "Content-Type": "application/octet-stream"})

    def _send_pieces(self, upload: dict[str, Any], file: Any, piece_bytes: int,
                     progress: Callable[[int, int], None] | None) -> None:
        total, offset = int(upload["size_bytes"]), int(upload["received_bytes"])
        failures = 0
        while offset < total:
            if progress is not None:
                progress(offset, total)
            file.seek(offset)
            piece = file.read(min(piece_bytes, total - offset))
            try:
                offset = int(self.send_piece(upload["id"], piece, offset, total)
                             ["received_bytes"])
                failures = 0
            except RECONNECTABLE:
                failures += 1
                if failures > PIECE_RETRIES:
                    raise
                time.sleep(min(2.0 ** failures * 0.1, 5.0))
                # what arrived before the break: the server kept whole pieces only
                offset = int(self.get_upload(upload["id"])["received_bytes"])
        if progress is not None:
            progress(total, total)

    def list_datasets(self, page_size: int = 50, *, builtin: bool = False
                      ) -> Iterator[dict[str, Any]]:
        """Your uploaded datasets, newest first; `builtin=True`: the builtin ones instead."""
        params = {"limit": page_size, "builtin": "true" if builtin else None}
        return self._pages("/v1/datasets", params)

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    # -- jobs -----------------------------------------------------------------------------------
    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/v1/jobs:validate", json=spec)

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit a job. Without a key of the caller's, each call gets a fresh one, so a retry
        after a 503 cannot make the job twice."""
        key = idempotency_key or uuid.uuid4().hex
        return self._json("POST", "/v1/jobs", json=spec, headers={"Idempotency-Key": key})

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def list_jobs(self, status: str | None = None, page_size: int = 50
                  ) -> Iterator[dict[str, Any]]:
        """Every job, newest first, following the cursor pages lazily."""
        return self._pages("/v1/jobs", {"status": status, "limit": page_size})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def resume(self, job_id: str, epochs: int | None = None) -> dict[str, Any]:
        body = {"epochs": epochs} if epochs is not None else {}
        return self._json("POST", f"/v1/jobs/{job_id}/resume", json=body)

    def fork(self, job_id: str, *, checkpoint_id: str | None = None, epoch: int | None = None,
             overrides: dict[str, Any] | None = None, optimizer_state: str = "keep",
             ) -> dict[str, Any]:
        """A new job from one of the job's checkpoints (its latest by default)."""
        body: dict[str, Any] = {"overrides": overrides or {}, "optimizer_state": optimizer_state}
        if checkpoint_id is not None:
            body["checkpoint_id"] = checkpoint_id
        if epoch is not None:
            body["epoch"] = epoch
        return self._json("POST", f"/v1/jobs/{job_id}/fork", json=body)

    def reproduce(self, job_id: str) -> dict[str, Any]:
        """Run a succeeded job again from its spec, data and seed; both then show the verdict."""
        return self._json("POST", f"/v1/jobs/{job_id}/reproduce")

    def lr_range_test(self, spec: dict[str, Any], *, min_lr: float | None = None,
                      max_lr: float | None = None, steps: int | None = None) -> dict[str, Any]:
        """Start a learning-rate range test of `spec` (a short job; None: the server's
        defaults); its result is `lr_range_test_result(job["id"])` once the job has ended."""
        body = {"spec": spec, "min_lr": min_lr, "max_lr": max_lr, "steps": steps}
        return self._json("POST", "/v1/jobs:lr_range_test",
                          json={k: v for k, v in body.items() if v is not None})

    def lr_range_test_result(self, job_id: str) -> dict[str, Any]:
        """A range test's (lr, loss) series and suggested rate (empty until it has ended)."""
        return self._json("GET", f"/v1/jobs/{job_id}/lr_range_test")

    def manifest(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/manifest")

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job with its checkpoints, metrics and events (409 if active)."""
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def metrics(self, job_id: str, after_epoch: int = 0) -> list[dict[str, Any]]:
        """The whole per-epoch history after `after_epoch` (the cursor is the next after_epoch)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._json("GET", f"/v1/jobs/{job_id}/metrics",
                              params={"after_epoch": after_epoch})
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            after_epoch = int(page["next_cursor"])

    def metrics_csv(self, job_id: str, path: str | Path | None = None) -> str:
        """Every epoch's metrics as CSV text; also written to `path` when given."""
        text = self._request("GET", f"/v1/jobs/{job_id}/metrics.csv").text
        if path is not None:
            Path(path).write_text(text)
        return text

    def diagnostics(self, job_id: str, layer: int | None = None,
                    after_epoch: int = 0) -> dict[str, Any]:
        """Per-layer diagnostics as epoch series, with the job's warnings."""
        params: dict[str, Any] = {"after_epoch": after_epoch}
        if layer is not None:
            params["layer"] = layer
        return self._json("GET", f"/v1/jobs/{job_id}/diagnostics", params=params)

    def compare(self, job_ids: Sequence[str]) -> dict[str, Any]:
        """The spec paths whose values differ and each job's best and last metrics."""
        return self._json("GET", "/v1/jobs:compare", params={"ids": ",".join(job_ids)})

    def events(self, job_id: str, last_event_id: int | None = None, *,
               max_reconnects: int = 100) -> Iterator[Event]:
        """The job's events as they happen, until the job is finished.

        The server ends a stream when the job is terminal, or after a while (then, as after a
        dropped connection, this reopens it with `Last-Event-ID`). `max_reconnects` counts
        consecutive reopenings that brought no event, so a dead server ends the loop.
        """
        return self._follow(f"/v1/jobs/{job_id}/events", lambda: self._status_or_none(job_id),
                            last_event_id, max_reconnects)

    def _follow(self, path: str, status: Callable[[], str | None], last_event_id: int | None,
                max_reconnects: int) -> Iterator[Event]:
        """An event stream followed across reconnections until `status()` is terminal."""
        retry_s, idle = 1.0, 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            got_any, dropped = False, False
            try:
                with self._http.stream("GET", path, headers=headers,
                                       timeout=httpx.Timeout(30.0, read=60.0)) as response:
                    if response.is_error:
                        response.read()
                        raise WeightsmithAPIError.from_response(response)
                    for item in parse_sse(response.iter_lines()):
                        if isinstance(item, int):
                            retry_s = item / 1000.0
                            continue
                        if item.id is not None:
                            last_event_id = item.id
                        got_any = True
                        yield item
            except RECONNECTABLE:
                dropped = True
            # The server ends a stream cleanly once a finished job's last event is out.
            if not dropped and status() in TERMINAL_STATUSES:
                return
            idle = 0 if got_any else idle + 1
            if idle > max_reconnects:
                raise WeightsmithAPIError(503, "event stream unavailable",
                                          f"no event after {idle} reconnections")
            if not got_any:
                time.sleep(min(retry_s, 5.0))

    def _status_or_none(self, job_id: str) -> str | None:
        try:
            return str(self.get_job(job_id)["status"])
        except RECONNECTABLE:
            return None

    # -- sweeps (docs/sweeps.md) ------------------------------------------------------------------
    def submit_sweep(self, body: dict[str, Any], idempotency_key: str | None = None
                     ) -> dict[str, Any]:
        """Submit a sweep (a fresh Idempotency-Key per call unless given, as `submit`)."""
        key = idempotency_key or uuid.uuid4().hex
        return self._json("POST", "/v1/sweeps", json=body, headers={"Idempotency-Key": key})

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/sweeps/{sweep_id}")

    def list_sweeps(self, page_size: int = 50) -> Iterator[dict[str, Any]]:
        """Every sweep, newest first, following the cursor pages lazily."""
        return self._pages("/v1/sweeps", {"limit": page_size})

    def sweep_trials(self, sweep_id: str, order: str = "index") -> list[dict[str, Any]]:
        """Every trial of the sweep, by index or best first."""
        return list(self._pages(f"/v1/sweeps/{sweep_id}/trials", {"order": order}))

    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/sweeps/{sweep_id}/cancel")

    def sweep_events(self, sweep_id: str, last_event_id: int | None = None, *,
                     max_reconnects: int = 100) -> Iterator[Event]:
        """The sweep's events (trial started, rung reported, pruned, finished, new best, sweep
        finished) as they happen, until it ends; reconnects as `events` does."""
        def status() -> str | None:
            try:
                return str(self.get_sweep(sweep_id)["status"])
            except RECONNECTABLE:
                return None

        return self._follow(f"/v1/sweeps/{sweep_id}/events", status, last_event_id,
                            max_reconnects)

    # -- checkpoints and predictions ------------------------------------------------------------
    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/v1/jobs/{job_id}/checkpoints", {}))

    def checkpoint(self, checkpoint_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/checkpoints/{checkpoint_id}")

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        """Delete a checkpoint (409 while a queued or running job needs it)."""
        self._request("DELETE", f"/v1/checkpoints/{checkpoint_id}")

    def download_weights(self, checkpoint_id: str, path: str | Path | None = None) -> bytes:
        """The `weights.npz` bytes (docs/checkpoint-format.md); also written to `path`."""
        data = self._request("GET", f"/v1/checkpoints/{checkpoint_id}/weights.npz").content
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def export_onnx(self, target: str, path: str | Path | None = None,
                    opset: int | None = None, version: int | None = None) -> bytes:
        """A checkpoint (by id), or with `version` a registered model (by name) at that
        version, as an ONNX model's bytes (the server's default opset unless `opset`); also
        written to `path` when given."""
        params = {"opset": opset} if opset is not None else None
        where = (f"/v1/checkpoints/{target}" if version is None
                 else f"/v1/models/{target}/versions/{version}")
        data = self._request("GET", f"{where}/model.onnx", params=params).content
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def layer(self, checkpoint_id: str, name: str) -> np.ndarray:
        """One weight array (e.g. `0.weight`), from the JSON form of the layer endpoint."""
        body = self._json("GET", f"/v1/checkpoints/{checkpoint_id}/layers/{name}")
        return np.asarray(body["values"], dtype=body.get("dtype", "float64")).reshape(body["shape"])

    def import_checkpoint(self, weights: bytes | str | Path,
                          loss: str | None = None) -> dict[str, Any]:
        """Import a `weights.npz` (with its `__spec__`) to predict with or warm-start from.

        `loss` (e.g. "cross_entropy") sets predict's link; without it predict is raw outputs.
        """
        data = weights if isinstance(weights, bytes) else Path(weights).read_bytes()
        params = {"loss": loss} if loss is not None else None
        return self._json("POST", "/v1/checkpoints", content=data, params=params,
                          headers={"Content-Type": "application/x-npz"})

    # -- model registry -------------------------------------------------------------------------
    def create_model(self, name: str, description: str | None = None) -> dict[str, Any]:
        return self._json("POST", "/v1/models", json={"name": name, "description": description})

    def list_models(self) -> list[dict[str, Any]]:
        return list(self._pages("/v1/models", {}))

    def get_model(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/models/{name}")

    def register_version(self, name: str, *, job_id: str | None = None,
                         checkpoint: str = "best", checkpoint_id: str | None = None,
                         ) -> dict[str, Any]:
        """A checkpoint by id, or a job's `best` or `latest`, as the model's next version."""
        body: dict[str, Any] = ({"checkpoint_id": checkpoint_id} if checkpoint_id is not None
                                else {"job_id": job_id, "checkpoint": checkpoint})
        return self._json("POST", f"/v1/models/{name}/versions", json=body)

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        return list(self._pages(f"/v1/models/{name}/versions", {}))

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        return self._json("PUT", f"/v1/models/{name}/aliases/{alias}", json={"version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/v1/models/{name}/aliases/{alias}")

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json(
            "GET", f"/v1/models/{name}/aliases/{alias}/history")["items"]
        return items

    def predict_model(self, name: str, inputs: Any, *, alias: str | None = None,
                      version: int | None = None) -> dict[str, Any]:
        """Predict with the version `alias` points at, version `version`, or the newest."""
        rows = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
        body: dict[str, Any] = {"inputs": rows}
        if alias is not None:
            body["alias"] = alias
        if version is not None:
            body["version"] = version
        return self._json("POST", f"/v1/models/{name}/predict", json=body)

    def predict(self, target: str, inputs: Any, checkpoint: str = "best") -> dict[str, Any]:
        """Predict with a job's checkpoint (`best`, `latest` or an id) or a checkpoint id."""
        rows = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
        if target.startswith("ckpt_"):
            return self._json("POST", f"/v1/checkpoints/{target}/predict",
                              json={"inputs": rows})
        return self._json("POST", f"/v1/jobs/{target}/predict",
                          json={"inputs": rows, "checkpoint": checkpoint})

    # -- batch predictions --------------------------------------------------------------------
    def submit_batch_prediction(self, dataset_id: str, *, model: str | None = None,
                                alias: str | None = None, version: int | None = None,
                                checkpoint_id: str | None = None, job_id: str | None = None,
                                format: str = "csv") -> dict[str, Any]:
        """Score every row of a dataset with a model (alias, version or newest), a checkpoint
        or a job's best checkpoint; the batch, status "queued"."""
        body: dict[str, Any] = {"dataset_id": dataset_id, "format": format}
        if model is not None:
            ref: dict[str, Any] = {"name": model}
            ref.update({k: v for k, v in (("alias", alias), ("version", version))
                        if v is not None})
            body["model"] = ref
        if checkpoint_id is not None:
            body["checkpoint_id"] = checkpoint_id
        if job_id is not None:
            body["job_id"] = job_id
        return self._json("POST", "/v1/batch-predictions", json=body)

    def get_batch_prediction(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/batch-predictions/{batch_id}")

    def cancel_batch_prediction(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/batch-predictions/{batch_id}/cancel")

    def batch_prediction_result(self, batch_id: str, path: str | Path) -> int:
        """Stream a succeeded batch's result (CSV or NPY) into `path`; the bytes written."""
        written = 0
        with self._http.stream("GET", f"/v1/batch-predictions/{batch_id}/result") as response:
            if response.is_error:
                response.read()
                raise WeightsmithAPIError.from_response(response)
            with open(path, "wb") as out:
                for part in response.iter_bytes():
                    written += out.write(part)
        return written

    def batch_prediction_events(self, batch_id: str) -> Iterator[Event]:
        """`progress` events (id: rows done) and the final `status` event, reconnecting with
        Last-Event-ID when the server ends a stream before the batch ends."""
        last: int | None = None
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            with self._http.stream("GET", f"/v1/batch-predictions/{batch_id}/events",
                                   headers=headers,
                                   timeout=httpx.Timeout(30.0, read=60.0)) as response:
                if response.is_error:
                    response.read()
                    raise WeightsmithAPIError.from_response(response)
                for item in parse_sse(response.iter_lines()):
                    if isinstance(item, int):
                        continue
                    last = item.id if item.id is not None else last
                    yield item
                    if item.event == "status":
                        return
            if self.get_batch_prediction(batch_id)["status"] in TERMINAL_STATUSES:
                return
