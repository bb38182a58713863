"""Runtime settings shared by the worker and the service (stdlib only)."""

from config.settings import Limits, Settings

__all__ = ["Limits", "Settings"]
