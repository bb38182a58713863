"""The WSGI application, built once per process: ``service.wsgi:app``.

Both server modes serve it through the ASGI front (service/asgi.py, service/front.py); any
WSGI server can still serve it directly, without the front's protection from slow clients.

``app`` is created on first access (PEP 562) so that importing this module reads no settings;
gunicorn's ``getattr(module, "app")`` builds it from ``Settings.from_env()`` in the worker.

Once built, the objects the process holds so far (~150,000: Flask, SQLAlchemy, Celery,
pydantic, NumPy) are frozen out of the garbage collector. They live as long as the worker
anyway, and a full collection walked all of them: one every ~3,000 predict requests, stalling
that request's thread for ~140 ms (measured with gc.callbacks), the worst of the API's tail
latencies. Python's gc docs recommend gc.freeze() for exactly this; the worker's pool
children do the same (worker/celery_app.py).
"""

from __future__ import annotations

import gc
from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from service.app import create_app

        _app = create_app()
        gc.freeze()
    return _app
