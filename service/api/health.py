"""Liveness and readiness probes: `/healthz` (the process answers) and `/readyz` (it can work)."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel
from sqlalchemy import text

from service.context import services
from service.errors import problem

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="health")])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


def _check_database() -> str:
    with services().engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "ok"


def _check_broker() -> str:
    services().dispatcher.ping(timeout=2.0)
    return "ok"


def _check_schema() -> str:
    from store.migrate import is_at_head

    if not is_at_head(services().engine):
        raise RuntimeError("database schema is not at the latest migration")
    return "ok"


@bp.get("/healthz", responses={"200": Health}, security=[])
def healthz() -> Response:
    """Liveness: the process is up."""
    return jsonify(status="ok")


@bp.get(
    "/readyz",
    responses={
        "200": Ready,
        "503": {
            "description": "A dependency is down",
            "content": {"application/problem+json": {"schema": {"type": "object"}}},
        },
    },
    security=[],
)
def readyz() -> Response:
    """Readiness: database reachable, broker reachable, schema at the latest migration."""
    checks: dict[str, str] = {}
    healthy = True
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("schema", _check_schema),
    ):
        try:
            checks[name] = check()
        except Exception as exc:
            healthy = False
            checks[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
    if healthy:
        return jsonify(status="ready", checks=checks)
    failed = ", ".join(k for k, v in checks.items() if v != "ok")
    return problem(503, f"not ready: {failed}", kind="not-ready", extra={"checks": checks})
