"""Broker transports that drop a bad message instead of dying on it (issue 19).

kombu decodes a message's envelope (JSON: body, headers, properties) in the transport, before
Celery sees it. Celery's consumer copes with a bad *body* (``on_decode_error`` acks it, an
unknown task is rejected), but an envelope that is not JSON, or JSON kombu cannot make a
``Message`` of, raises out of ``drain_events`` and ends the worker: a zero-length file in the
broker folder (which kombu's own filesystem writer leaves for a reader that catches it
mid-write) stopped ``weightsmith serve``, and each such entry on the Redis list stopped a
production worker once. These subclasses log and drop such a message, and the filesystem
one writes its files atomically so a reader never sees half of one.

They override kombu's ``Channel._get`` / ``_put`` / ``_brpop_read`` and ``Transport._deliver``,
private methods: pyproject.toml bounds kombu's version, and tests/worker/test_transports.py
runs real bad messages through real workers on both transports.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem, redis
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

BODY_ENCODINGS = (None, "utf-8", "base64")
SHOWN_CHARS = 200  # of a dropped message, in the log


def malformed(payload: Any) -> str | None:
    """Why kombu could not make a Message of `payload` (a decoded envelope), or None.

    The checks are what ``kombu.transport.virtual.Message`` and the QoS's bookkeeping read:
    properties with a delivery tag and delivery info (exchange, routing key, which the
    Redis QoS needs to restore an unacked message), a body in a known encoding, headers as
    a mapping.
    """
    if not isinstance(payload, dict):
        return f"the envelope is a {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no properties"
    if not isinstance(properties.get("delivery_tag"), str | int):
        return "no delivery_tag"
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(
            isinstance(info.get(k), str) for k in ("exchange", "routing_key")):
        return "no delivery_info with exchange and routing_key"
    if not isinstance(payload.get("headers", {}), dict | None):
        return "headers are not an object"
    for key in ("content-type", "content-encoding"):
        if not isinstance(payload.get(key), str | None):
            return f"{key} is not a string"
    encoding = properties.get("body_encoding")
    if encoding not in BODY_ENCODINGS:
        return f"unknown body_encoding {encoding!r}"
    body = payload.get("body")
    if not isinstance(body, str | None):
        return "the body is not a string"
    if body and encoding == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "the body is not base64"
    return None


def _dropped(queue: str, why: str, payload: Any) -> None:
    log.error("dropped a malformed message from queue %r (%s): %.*r", queue, why,
              SHOWN_CHARS, payload)


class _DropMalformed:
    """Transport mixin: a message kombu cannot build is logged and dropped, never delivered."""

    def _deliver(self, message: Any, queue: str) -> None:
        why = malformed(message)
        if why is not None:
            _dropped(queue, why, message)
            return
        super()._deliver(message, queue)  # type: ignore[misc]


class FilesystemChannel(filesystem.Channel):  # type: ignore[misc]
    """Atomic writes; files that are not a JSON envelope are dropped."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Write to a hidden temporary name, then rename into place: a reader (which lists
        ``*.{queue}.msg``) sees the whole file or none of it. kombu wrote the final name
        directly, under a lock the reader's move does not honour."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(temporary, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(temporary, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        # kombu's _get has removed the file before it parses it: on a bad one, take the next.
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                _dropped(queue, f"not a JSON envelope: {exc}", "")


class FilesystemTransport(_DropMalformed, filesystem.Transport):  # type: ignore[misc]
    Channel = FilesystemChannel


class RedisChannel(redis.Channel):  # type: ignore[misc]
    """List entries that are not a JSON envelope are dropped (BRPOP has removed them)."""

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))
        except (UnicodeDecodeError, ValueError) as exc:
            # Raised by kombu's loads() of the popped entry: Celery's callback is only
            # reached with an envelope _deliver checked, and raises none of these itself.
            _dropped("(BRPOP)", f"not a JSON envelope: {exc}", "")
            return True

    def _get(self, queue: str) -> Any:
        while True:
            try:
                return super()._get(queue)
            except (UnicodeDecodeError, ValueError) as exc:
                _dropped(queue, f"not a JSON envelope: {exc}", "")


class RedisTransport(_DropMalformed, redis.Transport):  # type: ignore[misc]
    Channel = RedisChannel


def transport_for(broker_url: str) -> type | None:
    """Our transport class for `broker_url`, or None to let kombu pick by scheme."""
    if broker_url.startswith("filesystem://"):
        return FilesystemTransport
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisTransport
    return None
