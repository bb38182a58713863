"""Prometheus `/metrics`: request count, latency histogram, and jobs by status at scrape time.

Each app gets its own CollectorRegistry so that tests (and the benchmark) can build many apps in
one process without "duplicated timeseries" errors from the global registry.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service.context import read_session
from store.statuses import JOB_STATUSES

bp = APIBlueprint("metrics", __name__, abp_tags=[Tag(name="health")])


class JobsByStatus(Collector):
    """Counts jobs per status with one GROUP BY when Prometheus scrapes (never stale)."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from store.models import Job

        gauge = GaugeMetricFamily("weightsmith_jobs", "Jobs by status", labels=["status"])
        counts = dict.fromkeys(JOB_STATUSES, 0)
        with self._app.app_context(), read_session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            for status, n in rows:
                counts[str(status)] = int(n)
        for status, n in counts.items():
            gauge.add_metric([status], n)
        yield gauge


def init_metrics(app: Flask) -> None:
    registry = CollectorRegistry()
    requests_total = Counter(
        "weightsmith_http_requests_total", "HTTP requests",
        ["method", "endpoint", "status"], registry=registry,
    )
    latency = Histogram(
        "weightsmith_http_request_duration_seconds", "HTTP request latency",
        ["method", "endpoint"], registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    registry.register(JobsByStatus(app))
    app.extensions["weightsmith_metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    # One child per label set, looked up in C: prometheus_client's labels() validates the
    # labels and takes a lock on every call, a tenth of predict's own CPU in this hook.
    # The label sets are bounded: methods x url rules x statuses.
    request_counter = functools.lru_cache(maxsize=4096)(requests_total.labels)
    latency_histogram = functools.lru_cache(maxsize=1024)(latency.labels)

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        # The rule, not the path: ids in paths would explode the label cardinality.
        rule = request.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        method = request.method
        request_counter(method, endpoint, str(response.status_code)).inc()
        if started is not None:
            latency_histogram(method, endpoint).observe(time.perf_counter() - started)
        return response


@bp.get(
    "/metrics",
    responses={"200": {"description": "Prometheus text format",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}},
    security=[],
)
def metrics() -> Any:
    """Prometheus metrics in the text exposition format."""
    from flask import current_app

    registry = current_app.extensions["weightsmith_metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
