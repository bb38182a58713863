"""The Flask application factory (docs/api.md).

`create_app(settings)` wires the pieces: settings (read from the environment only when none are
passed, never at import), the database engine, the broker dispatcher, problem+json errors,
Bearer-key auth, rate limits, Prometheus metrics and one blueprint per resource.
"""

from __future__ import annotations

from flask_openapi3 import Info, OpenAPI

from config.settings import Settings
from service import errors
from service.context import EXTENSION_KEY, Services
from service.model_cache import ModelCache
from service.registry_cache import make_registry_cache
from service.schemas.common import Problem

SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer"}}


def create_app(settings: Settings | None = None, *, testing: bool = False) -> OpenAPI:
    """Build the WSGI application for `settings` (default: `Settings.from_env()`)."""
    from core.budget import network_bytes
    from service import auth, bodies, dashboard, limits
    from service.api import register_blueprints
    from service.api.metrics import init_metrics
    from service.client_address import ClientAddress
    from service.dispatch import Dispatcher
    from store.db import make_engine, make_session_factory

    if settings is None:
        settings = Settings.from_env()
    app = OpenAPI(
        __name__,
        info=Info(
            title="Weightsmith",
            version="1.0.0",
            description="Training-as-a-service for NumPy neural networks.",
        ),
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        validation_error_status=422,
        validation_error_model=Problem,
        validation_error_callback=errors.validation_error_callback,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    app.config.update(
        TESTING=testing,
        MAX_CONTENT_LENGTH=settings.limits.max_upload_bytes,
        # Server-Sent Events: bounded streams, so a client reconnects with Last-Event-ID.
        SSE_MAX_SECONDS=300.0,
        SSE_HEARTBEAT_SECONDS=15.0,
        SSE_POLL_SECONDS=0.5,
        # A request body nested deeper than this is refused before any model sees it.
        MAX_JSON_DEPTH=settings.limits.max_json_depth,
    )
    # No ping before each checkout (a round trip per request, ~0.25 ms of a submission's
    # CPU): after the database restarts, the first request to meet a dead connection gets a
    # 503 (service.errors) and SQLAlchemy recycles every connection older than that one.
    # One pooled connection per API thread: SQLAlchemy's default of 5 closed the 6th-8th
    # on return and reconnected on the next request, a PostgreSQL backend started and
    # ended per submission under load (py-spy and perf, benchmarks/service/README.md).
    engine = make_engine(settings.database_url, pool_pre_ping=False,
                         pool_size=settings.api_threads)
    app.extensions[EXTENSION_KEY] = Services(
        settings=settings,
        session_factory=make_session_factory(engine),
        read_sessions=make_session_factory(engine, reads=True),
        engine=engine,
        dispatcher=Dispatcher(settings),
        model_cache=ModelCache(None, max_bytes=settings.model_cache_bytes,
                               size_of=network_bytes),
        registry_cache=make_registry_cache(settings.broker_url),
    )
    errors.init_app(app)
    bodies.init_app(app)  # a refused body is answered before authentication
    auth.init_app(app)
    limits.init_app(app, settings)
    init_metrics(app)
    register_blueprints(app)
    app.register_blueprint(dashboard.bp)  # the browser UI at / (service/dashboard)
    # REMOTE_ADDR is the client's address from here on, X-Forwarded-For read only from a
    # trusted proxy (service/client_address.py); every address-keyed limit reads it.
    app.wsgi_app = ClientAddress(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    # The contract says /openapi.json; flask-openapi3 serves it under its doc prefix too.
    app.add_url_rule(
        "/openapi.json", "openapi_json", lambda: app.api_doc, methods=["GET"]
    )
    return app
