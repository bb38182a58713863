"""WeightsmithClient against the real Flask app (httpx's WSGI transport, a migrated SQLite
database) with the real worker code run in-process: upload, submit, train, metrics, events,
checkpoints, weights, layers, predictions and problem+json errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from config.settings import Settings
from service.client import Event, WeightsmithAPIError, WeightsmithClient, parse_sse

EPOCHS = 4


def blobs_csv(n: int = 80, seed: int = 0) -> bytes:
    """Two Gaussian blobs, labels 0/1 in the last column."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(0.0, 0.6, size=(n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    lines = ["a,b,label"] + [f"{a:.6f},{b:.6f},{t}" for (a, b), t in zip(X, y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def tiny_spec(dataset: str, epochs: int = EPOCHS, units: int = 5) -> dict[str, Any]:
    return {
        "name": "tiny",
        "dataset": dataset,
        "model": {"layers": [{"type": "dense", "units": units, "activation": "tanh"},
                             {"type": "dense", "units": 2}]},
        "optimizer": {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": 16, "seed": 0, "validation_split": 0.25},
        "checkpoints": {"every_epochs": 1, "keep_last": 2, "keep_best": 1,
                        "monitor": "val_loss"},
    }


def run_job(session_factory: Any, settings: Settings, job_id: str) -> str:
    """What the Celery task does, in this process."""
    from worker.runner import JobRunner

    return JobRunner(session_factory, settings, job_id, "test-worker").run()


@pytest.fixture
def ws(app: Any, api_key: str) -> Iterator[WeightsmithClient]:
    client = WeightsmithClient("http://testserver", api_key,
                               transport=httpx.WSGITransport(app=app))
    yield client
    client.close()


@pytest.fixture
def finished_job(ws: WeightsmithClient, session_factory: Any, settings: Settings
                 ) -> dict[str, Any]:
    dataset = ws.upload_dataset(blobs_csv(), filename="blobs.csv")
    job = ws.submit(tiny_spec(dataset["id"]))
    assert run_job(session_factory, settings, job["id"]) == "succeeded"
    return ws.get_job(job["id"])


def numpy_predict(npz: bytes, X: np.ndarray) -> np.ndarray:
    """The README's inference with NumPy alone: standardize, dense-tanh-dense, softmax."""
    w = np.load(io.BytesIO(npz), allow_pickle=False)
    x = (X - w["__input_mean__"]) / w["__input_std__"]
    h = np.tanh(x @ w["0.weight"] + w["0.bias"])
    logits = h @ w["1.weight"] + w["1.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_parse_sse_reads_ids_kinds_json_multiline_data_and_retry() -> None:
    lines = iter(["retry: 1500", "", ": heartbeat", "", "id: 7", "event: epoch",
                  'data: {"epoch": 1,', 'data:  "loss": 0.5}', "", "id: 8", "event: status",
                  "data: done", ""])
    items = list(parse_sse(lines))
    assert items == [1500, Event(7, "epoch", {"epoch": 1, "loss": 0.5}),
                     Event(8, "status", "done")]


def test_finished_job_reads_back_through_every_endpoint(
    ws: WeightsmithClient, finished_job: dict[str, Any]
) -> None:
    job_id = finished_job["id"]
    assert finished_job["status"] == "succeeded"
    assert finished_job["progress"] == {"epoch": EPOCHS, "epochs": EPOCHS}

    history = ws.metrics(job_id)
    assert [m["epoch"] for m in history] == list(range(1, EPOCHS + 1))
    assert all(np.isfinite(m["loss"]) and 0.0 <= m["val_accuracy"] <= 1.0 for m in history)
    # The blobs are separable: four epochs of SGD with momentum get the validation set right.
    assert history[-1]["val_accuracy"] >= 0.9

    events = list(ws.events(job_id))
    seqs = [e.id for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert [e.data["epoch"] for e in events if e.event == "epoch"] == list(range(1, EPOCHS + 1))
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert events[-1].event == "status"
    # Last-Event-ID resumes after the given sequence.
    assert [e.id for e in ws.events(job_id, last_event_id=3)] == seqs[3:]

    checkpoints = ws.checkpoints(job_id)
    assert checkpoints and {c["kind"] for c in checkpoints} <= {"periodic", "best", "final"}
    ckpt = ws.checkpoint(checkpoints[-1]["id"])
    stats = {layer["name"]: layer for layer in ckpt["layers"]}
    assert stats["0.weight"]["shape"] == [2, 5] and stats["1.weight"]["shape"] == [5, 2]

    npz = ws.download_weights(ckpt["id"])
    weights = np.load(io.BytesIO(npz), allow_pickle=False)
    layer = ws.layer(ckpt["id"], "0.weight")
    np.testing.assert_allclose(layer, weights["0.weight"], rtol=1e-6)
    assert stats["0.weight"]["frobenius"] == pytest.approx(
        float(np.linalg.norm(weights["0.weight"])), rel=1e-5)

    X = np.array([[-1.5, -1.5], [1.5, 1.5], [0.2, -0.1]])
    served = ws.predict(ckpt["id"], X)
    np.testing.assert_allclose(served["outputs"], numpy_predict(npz, X), rtol=1e-4, atol=1e-6)
    assert served["classes"][:2] == [0, 1]
    by_job = ws.predict(job_id, X, checkpoint=ckpt["id"])
    assert by_job["outputs"] == served["outputs"]


def test_events_reconnect_with_last_event_id_after_a_dropped_connection(
    app: Any, api_key: str, finished_job: dict[str, Any]
) -> None:
    seen: list[str | None] = []

    class DropAfterFirstEvent(httpx.BaseTransport):
        """Cuts the first event stream right after its first event, as a flaky proxy would."""

        def __init__(self) -> None:
            self.inner = httpx.WSGITransport(app=app)
            self.cut = False

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if not request.url.path.endswith("/events"):
                return response
            seen.append(request.headers.get("Last-Event-ID"))
            if self.cut:
                return response
            self.cut = True
            body = response.read()
            first = body.split(b"\n\n")
            partial = b"\n\n".join(first[:2]) + b"\n\n"  # the retry line and event 1

            class Broken(httpx.SyncByteStream):
                def __iter__(self) -> Iterator[bytes]:
                    yield partial
                    raise httpx.ReadError("connection reset")

            return httpx.Response(200, headers=response.headers, stream=Broken())

    with WeightsmithClient("http://testserver", api_key,
                           transport=DropAfterFirstEvent()) as ws:
        events = list(ws.events(finished_job["id"]))
    assert seen == [None, "1"]
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].data["status"] == "succeeded"


def test_list_jobs_follows_cursor_pages_newest_first(ws: WeightsmithClient) -> None:
    # Four: the test limits allow four active jobs per tenant.
    ids = [ws.submit(tiny_spec("builtin:noisy_xor", units=u))["id"] for u in (2, 3, 4, 5)]
    assert [job["id"] for job in ws.list_jobs(page_size=3)] == ids[::-1]
    assert [job["id"] for job in ws.list_jobs(status="queued", page_size=1)] == ids[::-1]
    assert list(ws.list_jobs(status="succeeded")) == []


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(
    ws: WeightsmithClient
) -> None:
    first = ws.submit(tiny_spec("builtin:noisy_xor"), idempotency_key="run-42")
    again = ws.submit(tiny_spec("builtin:noisy_xor"), idempotency_key="run-42")
    assert again["id"] == first["id"]
    with pytest.raises(WeightsmithAPIError) as info:
        ws.submit(tiny_spec("builtin:noisy_xor", units=9), idempotency_key="run-42")
    assert info.value.status == 409


def test_problem_json_errors_carry_status_detail_and_field_errors(
    ws: WeightsmithClient, app: Any
) -> None:
    spec = tiny_spec("builtin:noisy_xor")
    spec["model"]["layers"][0]["units"] = -3
    with pytest.raises(WeightsmithAPIError) as info:
        ws.submit(spec)
    err = info.value
    assert err.status == 422
    assert any(e["field"] == "model.layers[0].units" for e in err.errors)
    assert err.title and err.body["status"] == 422

    with pytest.raises(WeightsmithAPIError) as missing:
        ws.get_job("job_00000000000000000000000000")
    assert missing.value.status == 404

    stranger = WeightsmithClient("http://testserver", "not-a-key",
                                 transport=httpx.WSGITransport(app=app))
    with stranger, pytest.raises(WeightsmithAPIError) as denied:
        list(stranger.list_jobs())
    assert denied.value.status == 401


def test_cancel_and_resume_a_queued_job(ws: WeightsmithClient, session_factory: Any,
                                        settings: Settings) -> None:
    job = ws.submit(tiny_spec("builtin:noisy_xor", epochs=3))
    assert ws.cancel(job["id"])["status"] == "cancelled"
    resumed = ws.resume(job["id"], epochs=2)
    assert resumed["status"] == "queued"
    assert run_job(session_factory, settings, job["id"]) == "succeeded"
    done = ws.get_job(job["id"])
    # Resumed from no checkpoint (it never ran) with two more epochs than the spec's three.
    assert done["progress"] == {"epoch": 5, "epochs": 5}
    assert [m["epoch"] for m in ws.metrics(job["id"])] == [1, 2, 3, 4, 5]


def test_imported_weights_predict_like_the_original_and_datasets_delete(
    ws: WeightsmithClient, finished_job: dict[str, Any]
) -> None:
    best = next(c for c in ws.checkpoints(finished_job["id"]) if c["kind"] == "best")
    npz = ws.download_weights(best["id"])
    X = np.array([[-1.0, -2.0], [2.0, 1.0], [0.5, -0.5]])
    original = ws.predict(best["id"], X)
    # Told the loss, the import predicts what the job does: softmax probabilities and classes
    # (class indices: an import has no dataset whose labels it could name).
    with_loss = ws.import_checkpoint(npz, loss="cross_entropy")
    assert with_loss["id"] != best["id"] and with_loss["kind"] == "imported"
    answer = ws.predict(with_loss["id"], X)
    np.testing.assert_allclose(answer["outputs"], original["outputs"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sum(answer["outputs"], axis=1), 1.0, rtol=1e-6)
    assert answer["classes"] == np.argmax(original["outputs"], axis=1).tolist()
    assert ws.checkpoint(with_loss["id"])["loss"] == "cross_entropy"
    # weights.npz does not record the loss, so without one an import answers raw logits
    # (core.checkpoint.load_checkpoint's documented identity link) and no classes; their
    # softmax is the job's answer.
    raw = ws.predict(ws.import_checkpoint(npz)["id"], X)
    assert raw["classes"] is None
    logits = np.asarray(raw["outputs"])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), original["outputs"],
                               rtol=1e-5, atol=1e-7)

    dataset_id = finished_job["spec"]["dataset"]
    assert [d["id"] for d in ws.list_datasets()] == [dataset_id]
    assert ws.get_dataset(dataset_id)["n_rows"] == 80
    ws.delete_dataset(dataset_id)
    with pytest.raises(WeightsmithAPIError) as gone:
        ws.get_dataset(dataset_id)
    assert gone.value.status == 404


def test_events_follow_a_running_job_across_streams_the_server_ends(
    app: Any, api_key: str, session_factory: Any, settings: Settings
) -> None:
    """The server closes each stream after SSE_MAX_SECONDS; the client reopens it after the
    last id it saw, so a job longer than one stream is followed to its end, event by event."""
    import threading
    import time

    from worker.runner import JobRunner, default_train

    app.config.update(SSE_MAX_SECONDS=0.15, SSE_POLL_SECONDS=0.02)
    opened: list[str | None] = []

    class Counting(httpx.WSGITransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                opened.append(request.headers.get("Last-Event-ID"))
            return super().handle_request(request)

    def slow_train(*args: Any, on_epoch: Any, **kwargs: Any) -> Any:
        def each(report: Any) -> None:
            on_epoch(report)
            time.sleep(0.2)  # longer than one stream

        return default_train(*args, on_epoch=each, **kwargs)

    with WeightsmithClient("http://testserver", api_key, transport=Counting(app=app)) as ws:
        job = ws.submit(tiny_spec("builtin:noisy_xor", epochs=5))
        runner = JobRunner(session_factory, settings, job["id"], "slow-worker",
                           train_fn=slow_train)
        thread = threading.Thread(target=runner.run)
        thread.start()
        try:
            events = list(ws.events(job["id"]))
        finally:
            thread.join(60)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.data["epoch"] for e in events if e.event == "epoch"] == [1, 2, 3, 4, 5]
    assert events[-1].data["status"] == "succeeded"
    assert len(opened) >= 3 and opened[0] is None
    resumed_after = [int(v) for v in opened[1:] if v is not None]
    assert resumed_after == sorted(resumed_after) and resumed_after[-1] < len(events)


def test_rate_limited_requests_wait_for_retry_after_then_succeed(tmp_path: Any) -> None:
    import dataclasses
    import time

    from service.app import create_app
    from store.migrate import upgrade_to_head
    from tests.service.conftest import TEST_LIMITS, make_key

    settings = Settings(data_dir=tmp_path,
                        limits=dataclasses.replace(TEST_LIMITS, rate_limit="2 per second"))
    upgrade_to_head(settings.database_url)
    app = create_app(settings, testing=True)
    key = make_key(app.extensions["weightsmith"].session_factory, "hasty")
    with WeightsmithClient("http://testserver", key,
                           transport=httpx.WSGITransport(app=app)) as ws:
        started = time.monotonic()
        for _ in range(5):
            assert list(ws.list_jobs()) == []
        elapsed = time.monotonic() - started
    # Five requests at two per second: the client slept through at least one Retry-After.
    assert elapsed >= 1.0


def test_weights_npz_carries_the_class_labels_and_an_import_predicts_with_them(
    ws: WeightsmithClient, session_factory: Any, settings: Settings
) -> None:
    labelled = blobs_csv().decode().replace(",0\n", ",dog\n").replace(",1\n", ",cat\n")
    dataset = ws.upload_dataset(labelled.encode(), filename="pets.csv")
    assert dataset["classes"] == ["cat", "dog"]  # sorted: output unit 0 is "cat"
    job = ws.submit(tiny_spec(dataset["id"]))
    assert run_job(session_factory, settings, job["id"]) == "succeeded"
    ckpt = ws.checkpoints(job["id"])[-1]["id"]
    payload = ws.download_weights(ckpt)
    w = np.load(io.BytesIO(payload), allow_pickle=False)
    assert w["__classes__"].dtype.kind == "U" and w["__classes__"].tolist() == ["cat", "dog"]
    rows = np.array([[-1.5, -1.4], [1.6, 1.5]])  # a "dog" (label 0 blob), a "cat"
    mapped = w["__classes__"][numpy_predict(payload, rows).argmax(axis=1)].tolist()
    assert mapped == ws.predict(ckpt, rows)["classes"] == ["dog", "cat"]
    imported = ws.import_checkpoint(payload, loss="cross_entropy")
    assert ws.predict(imported["id"], rows)["classes"] == ["dog", "cat"]
    assert np.load(io.BytesIO(ws.download_weights(imported["id"])),
                   allow_pickle=False)["__classes__"].tolist() == ["cat", "dog"]
    # A regression job has no classes to record, whatever its targets look like.
    regression = {**tiny_spec(dataset["id"]), "loss": {"type": "mse"}}
    regression["model"]["layers"][-1]["units"] = 1
    numeric = ws.upload_dataset(blobs_csv(), filename="blobs.csv")
    job = ws.submit({**regression, "dataset": numeric["id"]})
    assert run_job(session_factory, settings, job["id"]) == "succeeded"
    ckpt = ws.checkpoints(job["id"])[-1]["id"]
    assert "__classes__" not in np.load(io.BytesIO(ws.download_weights(ckpt)),
                                        allow_pickle=False).files
