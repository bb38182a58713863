"""Server-side sub-commands of `weightsmith` (README): serve, api, worker, beat, db, keys.

`api`, `worker` and `beat` replace themselves (exec) with gunicorn or Celery, so signals from
Docker or a process manager reach the real server directly. `serve` runs all three as children
of :class:`service.supervisor.Supervisor` after migrating the database and, on the first start,
creating an API key for the local tenant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

# The niceness of `serve`'s Celery worker (WEIGHTSMITH_WORKER_NICENESS, unless set): on one
# machine a training job takes whole cores, and with the worker at the API's priority a
# predict waited for the scheduler behind it (benchmarks/service/bench_held_predict.py).
SERVE_WORKER_NICENESS = 10
LOCAL_TENANT = "local"
KEY_FILE = "api_key"
KEY_MARKER = ".local_key_issued"


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", *args]


def worker_argv(concurrency: int, loglevel: str = "INFO") -> list[str]:
    # prefork (even with one process) keeps Celery's hard time limit and worker-lost handling;
    # mingle/gossip only add broker chatter for workers that share nothing but the database.
    return celery_argv(
        "worker", "--pool=prefork", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
        "--without-mingle", "--without-gossip",
    )


def beat_argv(settings: Settings, loglevel: str = "INFO") -> list[str]:
    return celery_argv("beat", f"--loglevel={loglevel}",
                       f"--schedule={settings.data_dir / 'celerybeat-schedule'}")


def api_argv(host: str, port: int, workers: int, threads: int,
             settings: Settings | None = None) -> list[str]:
    """gunicorn's asyncio worker serving service.asgi:app (docs/reliability.md, "Streaming"),
    with the headers deadline and the connection cap of service/http_worker.py.

    The event loop reads every request and follows every event stream; the Flask views run on
    `threads` threads (service/front.py), which a slow or streaming client therefore never
    holds. From `settings` (else the environment's): the open connections a process keeps,
    idle ones included (WEIGHTSMITH_API_CONNECTIONS), and whether each request gets a line
    on stdout (WEIGHTSMITH_ACCESS_LOG).
    """
    settings = settings or Settings.from_env()
    return [
        sys.executable, "-m", "gunicorn", "--worker-class=service.http_worker.DeadlineWorker",
        f"--workers={workers}",
        f"--env=WEIGHTSMITH_API_THREADS={threads}",
        f"--worker-connections={settings.api_connections}", f"--bind={host}:{port}",
        *(["--access-logfile=-"] if settings.access_log else []),
        # The control socket defaults to one path in $HOME: two APIs on a host would clash.
        "--graceful-timeout=10", "--no-control-socket", "service.asgi:app",
    ]


def _exec(argv: Sequence[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], list(argv))
    return 1  # not reached: execv replaces this process or raises


def _settings() -> Settings:
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def upgrade(settings: Settings) -> None:
    from store.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)


def create_key(settings: Settings, tenant: str) -> str:
    """Create `tenant` if needed and a new API key for it; the plain key is returned once."""
    from store.db import make_engine, make_session_factory
    from store.tenants import create_api_key, get_or_create

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine).begin() as s:
            tenant_row = get_or_create(s, tenant)
            key = create_api_key(s, tenant_row.id)
    finally:
        engine.dispose()
    return key


def first_start_key(settings: Settings) -> str | None:
    """On the first start only: a key for the local tenant, also saved to data_dir/api_key."""
    marker = settings.data_dir / KEY_MARKER
    if marker.exists():
        return None
    key = create_key(settings, LOCAL_TENANT)
    path = settings.data_dir / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file
    marker.write_text("the local tenant's first key was issued; see api_key\n")
    return key


# -- handlers ----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from service.supervisor import ChildSpec, Supervisor

    settings = _settings()
    upgrade(settings)
    key = first_start_key(settings)
    env = dict(os.environ, WEIGHTSMITH_DATA_DIR=str(settings.data_dir),
               WEIGHTSMITH_DATABASE_URL=settings.database_url,
               WEIGHTSMITH_BROKER_URL=settings.broker_url,
               WEIGHTSMITH_WORKER_NICENESS=os.environ.get("WEIGHTSMITH_WORKER_NICENESS")
               or str(SERVE_WORKER_NICENESS))
    supervisor = Supervisor([
        ChildSpec("api", api_argv(args.host, args.port, workers=1,
                                  threads=settings.api_threads, settings=settings)),
        ChildSpec("worker", worker_argv(concurrency=1)),
        ChildSpec("beat", beat_argv(settings)),
    ], env=env)
    print(f"Weightsmith is serving at http://{args.host}:{args.port}  (Ctrl-C stops it)")
    print(f"  data: {settings.data_dir}")
    if key is not None:
        key_path = settings.data_dir / KEY_FILE
        print(f"  API key for tenant {LOCAL_TENANT!r} (shown once, also saved to {key_path}):")
        print(f"  {key}")
    sys.stdout.flush()
    return supervisor.run()


def api_threads(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """`weightsmith api`'s threads per worker: --threads, else WEIGHTSMITH_API_THREADS."""
    return int(args.threads or (settings or Settings.from_env()).api_threads)


def cmd_api(args: argparse.Namespace) -> int:
    settings = _settings()
    threads = api_threads(args, settings)
    os.environ["WEIGHTSMITH_API_THREADS"] = str(threads)  # the app sizes its pool by it
    return _exec(api_argv(args.host, args.port, args.workers, threads, settings))


def cmd_worker(args: argparse.Namespace) -> int:
    _settings()
    return _exec(worker_argv(args.concurrency, args.loglevel))


def cmd_beat(args: argparse.Namespace) -> int:
    return _exec(beat_argv(_settings(), args.loglevel))


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    settings = _settings()
    upgrade(settings)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0


@contextlib.contextmanager
def _sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    from store.db import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def cmd_keys_list(args: argparse.Namespace) -> int:
    """The tenant's keys: id, prefix, created, revoked (never the key: only its hash is kept)."""
    from store import keys, tenants

    with _sessions(_settings()) as sessions, sessions() as s:
        tenant = tenants.get_by_name(s, args.tenant)
        if tenant is None:
            print(f"no tenant {args.tenant!r}", file=sys.stderr)
            return 3
        for row in keys.list_for_tenant(s, tenant.id):
            revoked = row.revoked_at.isoformat() if row.revoked_at else "-"
            print(f"{row.id}  {row.prefix}...  created {row.created_at.isoformat()}  "
                  f"revoked {revoked}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke one of the tenant's keys; every API process refuses it within seconds."""
    from store import keys, tenants

    with _sessions(_settings()) as sessions, sessions.begin() as s:
        tenant = tenants.get_by_name(s, args.tenant)
        row = None if tenant is None else keys.get(s, tenant.id, args.key_id)
        if tenant is None or row is None:
            print(f"no key {args.key_id!r} of tenant {args.tenant!r}", file=sys.stderr)
            return 3
        prefix = row.prefix
        keys.revoke(s, tenant.id, args.key_id)
    print(f"revoked {args.key_id} ({prefix}...) of tenant {args.tenant!r}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    key = create_key(_settings(), args.tenant)
    print(f"created an API key for tenant {args.tenant!r}; it is shown only now:")
    print(key)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's sub-commands; each sets `handler` to a function(args) -> exit code."""
    serve = commands.add_parser("serve", help="run API, worker and beat together (embedded)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address the API listens on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000,
                       help="port the API listens on (default: %(default)s)")
    serve.set_defaults(handler=cmd_serve)

    api = commands.add_parser("api", help="run the HTTP API (gunicorn's asyncio worker)")
    api.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: %(default)s)")
    api.add_argument("--port", type=int, default=8000,
                     help="port to listen on (default: %(default)s)")
    api.add_argument("--workers", type=int, default=2,
                     help="gunicorn worker processes (default: %(default)s)")
    api.add_argument("--threads", type=int, default=None,
                     help="threads per worker (default: WEIGHTSMITH_API_THREADS, else "
                          f"{Settings.api_threads})")
    api.set_defaults(handler=cmd_api)

    worker = commands.add_parser("worker", help="run one Celery worker")
    worker.add_argument("--concurrency", type=int, default=1,
                        help="jobs trained at once, one process each (default: %(default)s)")
    worker.add_argument("--loglevel", default="INFO",
                        help="Celery's log level (default: %(default)s)")
    worker.set_defaults(handler=cmd_worker)

    beat = commands.add_parser("beat", help="run Celery beat (periodic reconcile)")
    beat.add_argument("--loglevel", default="INFO",
                      help="Celery's log level (default: %(default)s)")
    beat.set_defaults(handler=cmd_beat)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="migrate to the newest schema").set_defaults(
        handler=cmd_db_upgrade)

    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = key_commands.add_parser("create", help="create a key; printed on the last line")
    create.add_argument("--tenant", required=True)
    create.set_defaults(handler=cmd_keys_create)
    listing = key_commands.add_parser("list", help="a tenant's keys (prefix only)")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(handler=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id (see list)")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=cmd_keys_revoke)
