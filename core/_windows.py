"""Strided-window helpers for conv and pooling: padding rules, im2col and col2im.

Both directions loop over the kh*kw kernel offsets and move one strided slice per offset:
kh*kw vectorised copies (im2col) or slice-adds (col2im). That is a handful of large NumPy
calls per batch, with no Python loop over pixels and no ``np.add.at`` scatter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
Padding = tuple[int, int, int, int]  # top, bottom, left, right


def conv_padding(padding: str | int, kh: int, kw: int, stride: int) -> Padding:
    """(top, bottom, left, right) zero padding for "valid", "same" or an int, as torch.

    "same" (stride 1 only) pads k - 1 in total per axis, the smaller half first, exactly
    like torch.nn.Conv2d(padding="same"): an even kernel gets the extra row at the bottom.
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        if stride != 1:
            raise ValueError("padding 'same' needs stride 1 (as in torch)")
        top, left = (kh - 1) // 2, (kw - 1) // 2
        return (top, kh - 1 - top, left, kw - 1 - left)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be 'valid', 'same' or an int >= 0, got {padding!r}")
    return (padding, padding, padding, padding)


def output_size(size: int, kernel: int, stride: int, pad_before: int = 0,
                pad_after: int = 0) -> int:
    """floor((size + pads - kernel) / stride) + 1, torch's floor mode."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def window(x: Array, i: int, j: int, stride: int, oh: int, ow: int) -> Array:
    """The strided view x[..., i + stride*a, j + stride*b] for a < oh, b < ow (a view)."""
    return x[..., i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]


def im2col(xp: Array, cols: Array, stride: int) -> None:
    """Fill ``cols`` (C, kh, kw, N, oh, ow) from the padded input ``xp`` seen as (C, N, Hp, Wp).

    Pass ``xp.transpose(1, 0, 2, 3)`` for NCHW data: the copy does the transposition.
    """
    _, kh, kw, _, oh, ow = cols.shape
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = window(xp, i, j, stride, oh, ow)


def col2im_add(dcols: Array, dxp: Array, stride: int) -> None:
    """Add ``dcols`` (C, kh, kw, N, oh, ow) into the zeroed padded gradient ``dxp`` (C, N, ...)."""
    _, kh, kw, _, oh, ow = dcols.shape
    for i in range(kh):
        for j in range(kw):
            window(dxp, i, j, stride, oh, ow)[...] += dcols[:, i, j]


def wide_windows(flat: Array, channels: int, batch: int, plane: int, width: int, kh: int,
                 kw: int, length: int) -> Array:
    """View (kh, kw, C, N, length) of ``flat`` (C*N planes of ``plane`` elements, plus slack).

    Row ``[i, j, c, n]`` starts i*Wp + j elements into the plane of image n of channel c:
    with stride 1 that is where kernel offset (i, j) of a padded image of width Wp = ``width``
    reads, so each im2col slice is one contiguous run of oh*Wp elements per plane (long
    inner loops instead of rows of ow). One view for every offset: building a strided view
    costs tens of microseconds, indexing it one.
    """
    size = flat.itemsize
    view: Array = np.lib.stride_tricks.as_strided(
        flat, shape=(kh, kw, channels, batch, length),
        strides=(width * size, size, batch * plane * size, plane * size, size))
    return view


def im2col_wide(xp_flat: Array, cols: Array, width: int, plane: int, batch: int = 0,
                start: int = 0) -> None:
    """Stride-1 im2col over "wide" rows: ``cols`` (C, kh, kw, m, oh*Wp) from the padded
    planes of images ``start .. start + m`` of a batch of ``batch`` (default: m) images.

    Output columns b >= ow of each row are garbage (they wrap into the next row); the conv
    layer discards them in forward and zeroes their gradient in backward.
    """
    c, kh, kw, m, length = cols.shape
    windows = wide_windows(xp_flat, c, batch or m, plane, width, kh, kw, length)
    np.copyto(cols, windows[:, :, :, start:start + m].transpose(2, 0, 1, 3, 4))


def col2im_wide(dcols: Array, dxp_flat: Array, width: int, plane: int, batch: int,
                start: int = 0) -> None:
    """Adjoint of :func:`im2col_wide`: add ``dcols`` (C, kh, kw, m, oh*Wp) of images
    ``start .. start + m`` into the planes of a batch of ``batch`` images.

    Every element inside an image's padding receives its kh*kw terms in (i, j) order
    whichever images a call covers; only padding (discarded) sees other orders.
    """
    c, kh, kw, m, length = dcols.shape
    windows = wide_windows(dxp_flat, c, batch, plane, width, kh, kw, length)
    with np.errstate():  # restores NumPy's buffer size on exit
        np.setbufsize(_unbuffered_size(length))
        for i in range(kh):
            for j in range(kw):
                windows[i, j, :, start:start + m] += dcols[:, i, j]


def _unbuffered_size(run: int) -> int:
    """A ufunc buffer size (a multiple of 16) no longer than runs of ``run`` elements.

    A ufunc whose operands are runs of contiguous elements that cannot be merged into one
    copies them through its buffers (8,192 elements by default) to hand its inner loop
    longer pieces; no longer than a run, the loop reads the operands in place instead:
    elementwise, the same values (NumPy 2.4, col2im of the 16->32 conv on 14x14 images,
    runs of 224: 1.05 -> 0.72 ms a batch of 64).
    """
    return max(16, run - run % 16)
