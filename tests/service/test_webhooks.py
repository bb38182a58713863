"""Webhooks end to end: the API, the outbox written with a job's final status, and real
deliveries to a real HTTP receiver on loopback (signature, retries with backoff, refusals)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config.settings import Settings
from config.webhooks import WebhookSettings
from service.app import create_app
from store import webhooks as store_webhooks
from store.columns import utcnow
from store.models import Webhook, WebhookDelivery
from tests.service.conftest import TEST_LIMITS
from tests.service.helpers import assert_problem, mlp_spec, upload_csv
from worker import webhooks
from worker.runner import JobRunner


class Receiver:
    """A loopback HTTP server that records each POST and answers from a script of codes."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.codes = list(codes or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=t0k3n"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """The receiver's check, as docs/webhooks.md gives it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = f"{parts['t']}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and \
        abs(time.time() - int(parts["t"])) < tolerance_s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Embedded mode allows loopback receivers by default; retries fast for the test.
    return Settings(data_dir=tmp_path, limits=TEST_LIMITS,
                    webhooks=WebhookSettings(retry_base_s=0.2, max_attempts=3, timeout_s=2.0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def create(client: FlaskClient, auth: dict[str, str], url: str,
           events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/v1/webhooks", headers=auth, json={
        "url": url, "events": events or ["job.succeeded", "job.failed"],
        "description": "test"})
    assert response.status_code == 201, response.data
    body: dict[str, Any] = response.get_json()
    return body


def run_deliveries(settings: Settings, session_factory: Any) -> list[float | None]:
    """Deliver every due delivery once, as `deliver_webhook` messages would."""
    with session_factory() as s:
        due = store_webhooks.due(s, older_than_s=0)
    return [webhooks.deliver(session_factory, settings, d) for d in due]


def test_create_list_get_delete_and_the_secret_is_shown_once(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        receiver: Receiver) -> None:
    hook = create(client, auth, receiver.url)
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    assert hook["events"] == ["job.failed", "job.succeeded"]
    listed = client.get("/v1/webhooks", headers=auth).get_json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}", headers=auth).get_json()
    assert client.get("/v1/webhooks", headers=other_auth).get_json()["items"] == []
    assert_problem(client.get(f"/v1/webhooks/{hook['id']}", headers=other_auth), 404)
    assert_problem(client.delete(f"/v1/webhooks/{hook['id']}", headers=other_auth), 404)
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=auth).status_code == 204
    assert_problem(client.get(f"/v1/webhooks/{hook['id']}", headers=auth), 404)


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://127.0.0.1:9/x", "events": ["job.exploded"]}, "events"),
    ({"url": "ftp://example.com/x", "events": ["job.failed"]}, "url"),
    ({"url": "not a url", "events": ["job.failed"]}, "url"),
    ({"url": "http://127.0.0.1:9/x", "events": []}, "events"),
    ({"url": "http://127.0.0.1:9/x", "events": ["job.failed"], "secret": "mine"}, "secret"),
])
def test_bad_webhooks_are_422_naming_the_field_and_store_nothing(
        client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str) -> None:
    problem = assert_problem(client.post("/v1/webhooks", headers=auth, json=body), 422)
    assert field in {e["field"] for e in problem["errors"]}
    assert client.get("/v1/webhooks", headers=auth).get_json()["items"] == []


def test_a_finished_job_is_delivered_signed_with_the_job_as_the_api_shows_it(
        client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = create(client, auth, receiver.url)
    dataset = upload_csv(client, auth)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()
    assert JobRunner(session_factory, settings, job["id"], "hook-worker").run() == "succeeded"

    assert run_deliveries(settings, session_factory) == [None]
    [request] = receiver.requests
    header = request["headers"]["Weightsmith-Signature"]
    assert verify(hook["secret"], header, request["body"])
    assert not verify(hook["secret"], header, request["body"] + b" ")
    event = json.loads(request["body"])
    assert event["type"] == "job.succeeded" and event["id"].startswith("evt_")
    assert event["data"] == client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert request["headers"]["Weightsmith-Event-Id"] == event["id"]

    deliveries = client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                            headers=auth).get_json()["items"]
    assert [(d["event_id"], d["state"], d["attempt"], d["status_code"]) for d in deliveries] \
        == [(event["id"], "delivered", 1, 200)]
    assert run_deliveries(settings, session_factory) == []  # nothing is sent twice
    assert hook["secret"] not in caplog.text and "t0k3n" not in caplog.text


def test_a_failing_receiver_gets_the_same_event_again_after_growing_gaps(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    with Receiver(codes=[500, 503]) as receiver:
        hook = create(client, auth, receiver.url)
        ping = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=auth)
        assert ping.status_code == 202
        delivery = ping.get_json()["delivery_id"]

        delays = [webhooks.deliver(session_factory, settings, delivery)]
        # Not due yet: a second message for it (or an impatient worker) sends nothing.
        assert webhooks.deliver(session_factory, settings, delivery) is None
        assert len(receiver.requests) == 1
        while delays[-1] is not None:
            time.sleep(delays[-1])
            delays.append(webhooks.deliver(session_factory, settings, delivery))

    assert delays == [0.2, 0.4, None]
    assert [json.loads(r["body"])["id"] for r in receiver.requests] \
        == [ping.get_json()["event_id"]] * 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:],
                                                strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4
    attempts = client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                          headers=auth).get_json()["items"]
    assert [(a["attempt"], a["status_code"], a["state"]) for a in attempts] == [
        (3, 200, "delivered"), (2, 503, "delivered"), (1, 500, "delivered")]


def test_attempts_stop_after_max_attempts_and_a_refused_connection_is_retried(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    with Receiver() as receiver:
        url = receiver.url
    hook = create(client, auth, url)  # the receiver is gone: connections are refused
    delivery = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=auth).get_json()
    results = []
    for _ in range(3):
        results.append(webhooks.deliver(session_factory, settings, delivery["delivery_id"]))
        with session_factory.begin() as s:  # make it due now instead of sleeping
            s.execute(sa.update(WebhookDelivery)
                      .where(WebhookDelivery.state == "pending")
                      .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert results == [0.2, 0.4, None]
    attempts = client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                          headers=auth).get_json()["items"]
    assert {a["state"] for a in attempts} == {"failed"}
    assert all(a["status_code"] is None and "Connect" in a["error"] for a in attempts)


def test_production_mode_refuses_private_targets_at_creation_and_at_delivery(
        tmp_path: Path, client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings, receiver: Receiver) -> None:
    hook = create(client, auth, receiver.url)  # allowed here (embedded)
    strict = settings.with_overrides(webhooks=WebhookSettings(allow_private=False))
    app: OpenAPI = create_app(strict, testing=True)
    for url in ("http://127.0.0.1/x", "http://localhost:8080/x", "http://10.0.0.5/x",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                "http://[::ffff:127.0.0.1]/x"):
        problem = assert_problem(app.test_client().post(
            "/v1/webhooks", headers=auth, json={"url": url, "events": ["job.failed"]}), 422)
        assert problem["errors"][0]["field"] == "url"
        assert "WEIGHTSMITH_WEBHOOKS_ALLOW_PRIVATE" in problem["errors"][0]["message"]

    delivery = client.post(f"/v1/webhooks/{hook['id']}/ping", headers=auth).get_json()
    assert webhooks.deliver(session_factory, strict, delivery["delivery_id"]) is None
    assert receiver.requests == []
    [attempt] = client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                           headers=auth).get_json()["items"]
    assert attempt["state"] == "failed" and "non-public" in attempt["error"]


def test_cancelling_a_queued_job_is_an_event_and_only_subscribers_get_it(
        client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        receiver: Receiver) -> None:
    create(client, auth, receiver.url, events=["job.cancelled"])
    create(client, auth, receiver.url, events=["job.succeeded"])
    dataset = upload_csv(client, auth)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 200
    run_deliveries(settings, session_factory)
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["job.cancelled"]
    assert json.loads(receiver.requests[0]["body"])["data"]["status"] == "cancelled"


def test_a_take_over_of_a_silent_worker_is_one_stalled_event(
        client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        receiver: Receiver) -> None:
    from worker import store_ops

    create(client, auth, receiver.url, events=["job.stalled"])
    dataset = upload_csv(client, auth)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()["id"]
    with session_factory.begin() as s:
        assert store_ops.claim(s, job, "silent-worker", settings) is not None
    later = settings.with_overrides(lease_timeout_s=0)
    time.sleep(0.01)
    with session_factory.begin() as s:
        assert store_ops.claim(s, job, "second-worker", later) is not None
    run_deliveries(settings, session_factory)
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["job.stalled"]


def test_reconcile_resends_deliveries_whose_message_was_lost(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        receiver: Receiver) -> None:
    from worker.tasks import send_due_webhooks

    hook = create(client, auth, receiver.url)
    with session_factory.begin() as s:
        [delivery] = store_webhooks.enqueue(s, hook_tenant(s, hook["id"]), "job.failed", {},
                                            now=utcnow() - timedelta(seconds=120))

    class App:
        sent: list[tuple[str, list[str]]] = []

        def send_task(self, name: str, args: list[str]) -> None:
            self.sent.append((name, args))

    app = App()
    assert send_due_webhooks(app, session_factory, older_than_s=60) == [delivery]
    assert app.sent == [("weightsmith.deliver_webhook", [delivery])]


def hook_tenant(s: Any, webhook_id: str) -> str:
    return str(s.get(Webhook, webhook_id).tenant_id)


SWEEP_EVENTS = ["sweep.succeeded", "sweep.cancelled", "sweep.new_best"]


def test_a_sweep_sends_each_new_best_and_its_end_with_the_sweep_as_the_api_shows_it(
        app: Any, client: FlaskClient, auth: dict[str, str], settings: Settings,
        receiver: Receiver) -> None:
    from tests.service.test_sweeps import body, run_sweep

    hook = create(client, auth, receiver.url, events=SWEEP_EVENTS)
    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    # Duplicate steps decide nothing twice, so they send no event twice either.
    sent = run_sweep(app, settings, sweep_id, steps_before=2)
    sweep = client.get(f"/v1/sweeps/{sweep_id}", headers=auth).get_json()
    assert sweep["status"] == "succeeded"
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    for request in receiver.requests:
        assert verify(hook["secret"], request["headers"]["Weightsmith-Signature"],
                      request["body"])
    assert [b["type"] for b in bodies][-1] == "sweep.succeeded"
    assert sent.count("weightsmith.deliver_webhook") == len(bodies)  # one message each
    assert bodies[-1]["data"] == sweep  # the sweep as GET /v1/sweeps/{id} shows it
    bests = [b["data"]["best"] for b in bodies if b["type"] == "sweep.new_best"]
    assert bests and bests[-1] == sweep["best"]
    # each new best is better than the one before, and no two name the same trial
    values = [b["value"] for b in bests]
    assert values == sorted(values) and len({b["trial"] for b in bests}) == len(bests)
    events = client.get(f"/v1/sweeps/{sweep_id}/events", headers=auth).get_data(as_text=True)
    assert events.count("event: new_best") == len(bests)
    assert len({b["id"] for b in bodies}) == len(bodies)


def test_a_cancelled_sweep_is_one_event_for_its_subscribers_only(
        app: Any, client: FlaskClient, auth: dict[str, str], settings: Settings,
        receiver: Receiver) -> None:
    from tests.service.test_sweeps import body, run_sweep

    create(client, auth, receiver.url, events=["sweep.cancelled"])
    create(client, auth, receiver.url, events=["sweep.succeeded", "job.succeeded"])
    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=auth).status_code == 202
    run_sweep(app, settings, sweep_id)
    run_sweep(app, settings, sweep_id)  # a step after the end changes nothing
    [request] = receiver.requests
    sent = json.loads(request["body"])
    assert sent["type"] == "sweep.cancelled"
    assert sent["data"]["status"] == "cancelled" and sent["data"]["stop_reason"] == "cancelled"
    assert sent["data"]["id"] == sweep_id


def test_a_step_that_rolls_back_leaves_no_sweep_event(
        app: Any, client: FlaskClient, auth: dict[str, str], settings: Settings,
        session_factory: Any, receiver: Receiver) -> None:
    """The outbox row is written in the step's transaction: no commit, no event."""
    from tests.service.test_sweeps import body
    from worker import sweep_controller

    create(client, auth, receiver.url, events=SWEEP_EVENTS)
    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=auth).status_code == 202
    with session_factory() as s:
        result = sweep_controller.step(s, sweep_id, settings.limits)
        assert result.finished and len(result.deliveries) == 1
        s.rollback()  # the step's transaction dies before its commit
    with session_factory() as s:
        assert store_webhooks.due(s, older_than_s=0) == []
    assert client.get(f"/v1/sweeps/{sweep_id}", headers=auth).get_json()["status"] == "queued"
