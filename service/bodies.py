"""Request bodies are limited by the bytes actually read, whatever the framing.

Werkzeug enforces `MAX_CONTENT_LENGTH` on a `Content-Length` header, but a chunked body is
read through a `LimitedStream` that stops quietly at the limit: a 100 MB chunked CSV was
stored as its first 64 MiB with a 201 (issue 19). `StrictRequest` reads one byte past the
limit and answers 413 if it arrives, so an over-limit body is never parsed, whatever reads it
(`get_data`, the multipart parser, `request.json`).

Behind the ASGI front (service/front.py) the body is counted before the application runs;
the front marks a refused one in the environ and `init_app`'s hook raises its 413 or 408
before authentication, so the answer is the usual problem document.
"""

from __future__ import annotations

from typing import IO

from flask import Flask, Request, request
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from service.errors import ApiError
from service.front import REFUSAL_KEY


def body_refused(status: int, detail: str) -> ApiError:
    """413 (too large) or 408 (too slow), naming the field `body`."""
    return ApiError(status, detail, kind="body-too-large" if status == 413 else "body-timeout",
                    errors=[{"field": "body", "message": detail}])


class OverLimitStream(LimitedStream):
    """A stream that raises 413 once more than `maximum` bytes have been read."""

    def __init__(self, stream: IO[bytes], maximum: int) -> None:
        # One byte past the maximum may be read: that byte is what proves the body too large.
        super().__init__(stream, maximum + 1, is_max=True)
        self.maximum = maximum

    def readinto(self, b: bytearray) -> int | None:  # type: ignore[override]
        count = super().readinto(b)
        if self.tell() > self.maximum:
            raise body_refused(413, f"the request body is over the limit of {self.maximum} "
                               "bytes")
        return count


class StrictRequest(Request):
    """Flask's request, with `stream` limited by the bytes read (see the module docstring)."""

    @cached_property
    def stream(self) -> IO[bytes]:  # type: ignore[override]
        maximum = self.max_content_length
        if maximum is None or "wsgi.input_terminated" not in self.environ:
            # Without a terminated input Werkzeug reads at most Content-Length bytes (none
            # without one) and refuses a Content-Length over the maximum itself.
            return get_input_stream(self.environ, max_content_length=maximum)
        length = self.content_length
        if length is not None and length > maximum:
            raise body_refused(413, f"the request body of {length} bytes is over the limit "
                               f"of {maximum} bytes")
        return OverLimitStream(self.environ["wsgi.input"], maximum)


def init_app(app: Flask) -> None:
    """Use StrictRequest, and turn the front's refusals into problem documents first."""
    app.request_class = StrictRequest

    @app.before_request
    def _refused_by_the_front() -> None:
        refused = request.environ.get(REFUSAL_KEY)
        if refused is not None:
            status, detail = refused
            raise body_refused(status, detail)
