"""Refuse hostile `.npz` uploads before NumPy decompresses anything (docs/reliability.md).

An `.npz` is a zip of `.npy` files. Reading the central directory costs nothing and tells the
declared uncompressed sizes, so a zip bomb (a few KiB that inflate to GiB), a member that is not
an `.npy`, or an object-dtype array (which would need pickle) is refused up front. NumPy then
reads with `allow_pickle=False` as a second line of defence.
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import IO

import numpy as np

from service.errors import ApiError

MAX_MEMBERS = 10_000
# Arrays may inflate past the upload size (compression), but only this many times over.
DECOMPRESSION_FACTOR = 4


def _refuse(message: str, status: int = 422) -> ApiError:
    return ApiError(status, f"file: {message}", kind="invalid-npz",
                    errors=[{"field": "file", "message": message}])


def check_npz(data: bytes | IO[bytes], max_uncompressed: int) -> None:
    """Raise a 413/422 ApiError unless `data` (bytes, or a spooled upload's file) is a
    plain, bounded zip of `.npy` arrays."""
    try:
        if not isinstance(data, bytes):
            data.seek(0)
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _refuse(f"not a valid .npz (zip) file: {exc}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise _refuse(f"{len(members)} arrays; at most {MAX_MEMBERS}")
        total = sum(m.file_size for m in members)
        if total > max_uncompressed:
            raise _refuse(
                f"decompresses to {total} bytes; the limit is {max_uncompressed}", status=413
            )
        for member in members:
            if not member.filename.endswith(".npy") or "/" in member.filename:
                raise _refuse(f"member {member.filename[:80]!r} is not a top-level .npy array")
            with archive.open(member) as stream:
                _check_header(stream, member.filename, member.file_size)


def _check_header(stream: IO[bytes], name: str, member_size: int) -> None:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    # zipfile.BadZipFile: a corrupt member (its CRC is checked only when read to the end).
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _refuse(f"{name}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise _refuse(f"{name}: object arrays need pickle, which is never allowed")
    # NumPy allocates what the header declares before reading: a header may not declare more
    # than the member holds (a 1 KB member declaring 2.9 TiB answered 500).
    declared = math.prod(shape) * dtype.itemsize
    if declared > member_size:
        raise _refuse(f"{name}: the header declares {declared} bytes of data, the member "
                      f"holds {member_size}")
