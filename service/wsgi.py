"""The WSGI entry point for gunicorn: ``gunicorn service.wsgi:app``.

``app`` is created on first access (PEP 562) so that importing this module reads no settings;
gunicorn's ``getattr(module, "app")`` builds it from ``Settings.from_env()`` in the worker.
"""

from __future__ import annotations

from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from service.app import create_app

        _app = create_app()
    return _app
