"""The one exception of the exporters, shaped like ``core.errors.SpecError``."""

from __future__ import annotations


class ExportError(Exception):
    """A network (or an option) the exporter cannot write; ``field`` names what.

    ``field`` is a spec path such as ``"model.layers[2]"`` or an option name (``"opset"``);
    ``str()`` is ``f"{field}: {message}"``. The service answers it with a 422 naming the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> ExportError:
        """The same error with ``prefix`` in front of its field (a layer's path)."""
        return ExportError(f"{prefix}.{self.field}" if self.field else prefix, self.message)
