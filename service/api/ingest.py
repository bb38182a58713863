"""From an uploaded file to a stored dataset, holding the file and its arrays once each.

The file is spooled to a temporary file on disk as it arrives (a request body read in pieces,
or the parts of an upload made with `/v1/uploads`), hashed on the way, and parsed from that
file: an NPZ's arrays are read member by member from it, text once into bytes. The parsed
arrays are then streamed into the dataset's parts as views of their own memory
(core.datasets.stored.frames), never serialised into one more object. Before issue 18 a
188 MB upload was in API memory four times (the body, its parsed arrays, the npz written
from them, and Werkzeug's cached copy).
"""

from __future__ import annotations

import csv
import hashlib
import mmap
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.orm import Session

from config.settings import Limits
from service.api import data
from service.api.npz_guard import DECOMPRESSION_FACTOR, check_npz
from service.errors import validation_error
from service.limits import check_storage

READ_BYTES = 1024 * 1024


@dataclass
class Spooled:
    """A file on disk (deleted when closed), its size and sha256."""

    file: IO[bytes]
    size: int
    sha256: str


@contextmanager
def spooled_stream(stream: IO[bytes]) -> Iterator[Spooled]:
    """`stream` read to its end into a temporary file (the request body limit applies as
    the stream is read: service/bodies.py answers 413 past it)."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as file:
        while chunk := stream.read(READ_BYTES):
            digest.update(chunk)
            file.write(chunk)
            size += len(chunk)
        file.flush()
        yield Spooled(file, size, digest.hexdigest())


@contextmanager
def spooled_upload(session: Session, upload_id: str, size: int) -> Iterator[Spooled]:
    """An upload's parts written into a temporary file at their offsets, then hashed."""
    from store import uploads

    with tempfile.TemporaryFile() as file:
        fd = file.fileno()
        os.ftruncate(fd, size)
        uploads.read(session, upload_id, lambda offset, part: _write_at(fd, part, offset))
        digest = hashlib.sha256()
        with _mapped(file, size) as view:
            if view is not None:
                digest.update(view)
        yield Spooled(file, size, digest.hexdigest())


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


@contextmanager
def _mapped(file: IO[bytes], size: int) -> Iterator[mmap.mmap | None]:
    if size == 0:
        yield None
        return
    with mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) as view:
        yield view


def parse(spooled: Spooled, fmt: str, target: str | None, limits: Limits, *,
          features_only: bool = False) -> Any:
    """The spooled file parsed as `fmt` into a core Dataset; 422 (413) naming the field."""
    from core.datasets import DatasetLimits, parse_dataset

    if spooled.size == 0:
        raise validation_error("file", "the upload is empty")
    if spooled.size > limits.max_upload_bytes:
        raise validation_error("file", f"the file has {spooled.size} bytes, more than the"
                               f" limit of {limits.max_upload_bytes}", status=413)
    if fmt == "npz":
        check_npz(spooled.file, limits.max_upload_bytes * DECOMPRESSION_FACTOR)
    try:
        return parse_dataset(
            spooled.file, fmt, target=target, features_only=features_only,
            limits=DatasetLimits(max_rows=limits.max_dataset_rows,
                                 max_features=limits.max_dataset_features,
                                 max_bytes=limits.max_upload_bytes))
    except (csv.Error, UnicodeError, ValueError, TypeError) as exc:
        # core reports what it recognises as DatasetError (422 via errors.py); anything
        # the parsers raise beyond that is still a bad upload, never a server error.
        if type(exc).__module__.startswith("core"):
            raise
        raise validation_error("file", f"cannot parse the {fmt} upload: {exc}") from None


def store(session: Session, tenant_id: str, dataset: Any, *, fmt: str, name: str | None,
          sha256: str, limits: Limits) -> tuple[Any, bool]:
    """(the stored dataset row, True), or (the tenant's stored copy of it, False)."""
    from core.datasets import stored
    from store import datasets as store_datasets

    copy_of = data.stored_copy(session, tenant_id, sha256, fmt, dataset)
    if copy_of is not None:
        return copy_of, False
    arrays = [dataset.X, dataset.y]
    size = stored.framed_size(arrays)
    check_storage(session, tenant_id, size, limits)
    row = store_datasets.create(
        session, tenant_id,
        name=name or f"dataset.{fmt}", format=fmt, n_rows=int(dataset.X.shape[0]),
        x_shape=[int(n) for n in dataset.X.shape], y_shape=[int(n) for n in dataset.y.shape],
        kind=dataset.kind, classes=dataset.classes,
        sha256=sha256, size_bytes=size, data=stored.frames(arrays),
    )
    return row, True
