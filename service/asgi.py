"""The ASGI entry point both server modes run: ``gunicorn -k asgi service.asgi:app``.

The Flask application of service/wsgi.py (built on first access, then frozen out of the
garbage collector) behind service/front.py, which reads requests and follows event streams on
gunicorn's event loop and runs the views on `WEIGHTSMITH_API_THREADS` threads.
"""

from __future__ import annotations

from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from service import wsgi
        from service.context import EXTENSION_KEY
        from service.front import AsgiFront

        flask_app = wsgi.app
        settings = flask_app.extensions[EXTENSION_KEY].settings
        _app = AsgiFront(flask_app, threads=settings.api_threads,
                         max_body_bytes=settings.limits.max_upload_bytes,
                         body_timeout_s=settings.limits.body_timeout_s)
    return _app
