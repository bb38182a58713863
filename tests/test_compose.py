"""docker-compose.yml and the Dockerfile: valid, and running commands that really exist.

No Docker engine runs here, so the file is validated against the compose-spec JSON schema that
check-jsonschema vendors, and every service command is parsed by our own CLI parser.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from config.settings import Settings
from service.cli import build_parser
from service.cli import server_commands as sc

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("api", "worker", "beat", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_matches_the_vendored_compose_spec_schema(compose: dict[str, Any]) -> None:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(str(e.message) for e in validator.iter_errors(compose))
    assert errors == []
    # The schema must actually reject a broken file, or the check above proves nothing.
    broken = {"services": {"api": {"image": "x", "ports": "8000"}}}
    assert list(validator.iter_errors(broken)) != []


@pytest.mark.parametrize(
    ("service", "handler"),
    [
        ("api", sc.cmd_api),
        ("worker", sc.cmd_worker),
        ("beat", sc.cmd_beat),
        ("migrate", sc.cmd_db_upgrade),
    ],
)
def test_each_service_runs_a_real_weightsmith_command(
    compose: dict[str, Any], service: str, handler: object
) -> None:
    command = compose["services"][service]["command"]
    assert command[0] == "weightsmith"
    args = build_parser().parse_args(command[1:])
    assert args.handler is handler


def test_api_listens_on_all_interfaces_with_the_asgi_worker(compose: dict[str, Any]) -> None:
    args = build_parser().parse_args(compose["services"]["api"]["command"][1:])
    assert (args.host, args.port) == ("0.0.0.0", 8000)
    argv = sc.api_argv(args.host, args.port, args.workers, sc.api_threads(args),
                       Settings(api_connections=1000))
    # gunicorn's asyncio worker with a headers deadline and a connection cap
    assert "--worker-class=service.http_worker.DeadlineWorker" in argv
    # The views' threads reach the app through the environment (service/asgi.py); slow and
    # streaming connections wait on the event loop, bounded by --worker-connections.
    assert f"--env=WEIGHTSMITH_API_THREADS={sc.api_threads(args)}" in argv
    assert "--worker-connections=1000" in argv
    assert argv[-1] == "service.asgi:app"
    # The access log as the compose file's environment asks (on: `docker compose logs api`).
    env = compose["services"]["api"]["environment"]
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.access_log
    logged = sc.api_argv(args.host, args.port, args.workers, sc.api_threads(args), settings)
    assert "--access-logfile=-" in logged and "--access-logfile=-" not in sc.api_argv(
        args.host, args.port, args.workers, 8, Settings(api_connections=1000))
    assert compose["services"]["api"]["ports"] == ["8000:8000"]


def test_api_sizes_its_database_pool_by_its_threads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`weightsmith api --threads N` tells the app N (WEIGHTSMITH_API_THREADS), and the app
    keeps one pooled connection per thread instead of SQLAlchemy's default of 5."""
    from config.settings import Settings
    from service.app import create_app

    execs: list[list[str]] = []
    monkeypatch.setattr(sc, "_exec", lambda argv: execs.append(list(argv)) or 0)
    monkeypatch.setenv("WEIGHTSMITH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WEIGHTSMITH_API_THREADS", raising=False)
    args = build_parser().parse_args(compose["services"]["api"]["command"][1:])
    assert args.handler(args) == 0
    assert "--env=WEIGHTSMITH_API_THREADS=8" in execs[-1]
    assert os.environ["WEIGHTSMITH_API_THREADS"] == "8"
    args = build_parser().parse_args(["api", "--threads", "12"])
    args.handler(args)
    assert "--env=WEIGHTSMITH_API_THREADS=12" in execs[-1]
    assert os.environ["WEIGHTSMITH_API_THREADS"] == "12"

    app = create_app(Settings.from_env(), testing=True)
    engine = app.extensions["weightsmith"].engine
    try:
        assert engine.pool.size() == 12
    finally:
        engine.dispose()


def test_worker_scales_and_others_wait_for_migrate(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "container_name" not in services["worker"]
    assert services["worker"]["deploy"]["replicas"] >= 1
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"


def test_backends_are_durable_and_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    for name in ("redis", "postgres", "api"):
        assert services[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    volumes = set(compose["volumes"])
    assert {"postgres-data", "redis-data"} <= volumes
    assert services["postgres"]["volumes"][0].startswith("postgres-data:")
    assert services["redis"]["volumes"][0].startswith("redis-data:")


def test_app_services_share_production_settings(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["WEIGHTSMITH_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["WEIGHTSMITH_DATABASE_URL"].endswith("@postgres:5432/weightsmith")
        assert env["WEIGHTSMITH_BROKER_URL"] == "redis://redis:6379/0"


def test_dockerfile_builds_the_package_on_python_311_slim() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert lines[[ln.startswith("FROM") for ln in lines].index(True)] == "FROM python:3.11-slim"
    assert any("pip install --no-deps ." in ln for ln in lines)
    cmd = json.loads(next(ln for ln in lines if ln.startswith("CMD"))[len("CMD"):])
    assert build_parser().parse_args(cmd[1:]).handler is sc.cmd_serve
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".weightsmith"} <= set(ignored)
