"""The pixel pass: decode the chosen images into one ``(x, y, z, t)`` float32 array in HU.

A study is read slice by slice. The images of one slice are decoded and rescaled (and
transposed to ``(x, y)``) into a gather buffer ``(t / 4, x * y, 4)``; the buffer is then
transposed into the time-last output, four frames at a time. Compressed images are
decoded in a thread pool (the decoders release the GIL), the next slice's while the
previous one is transposed from a second buffer. Uncompressed ones are read in one thread
(their bytes directly, `_read_native`): with the decoding cheap, a helper thread
transposing meanwhile only competed for the GIL and the caches (measured slower on this
project's busy 2-core machine).

Why by hand: a time-last array is the transpose of how files store their pixels, and
numpy's strided copy of a ``(t, x * y)`` buffer into ``(x * y, t)`` is memory-bound, and
the largest part of the reader's time (0.44 s of about 1 s at 512 x 512 x 8 x 89). The
buffer's rows are padded so that they do not lie a power of two apart: otherwise every
element of a column maps to the same cache set and the copy runs about 3 times slower.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from pydicom.pixels import apply_modality_lut, pixel_array

from ...errors import InputError
from .image import Image

__all__ = ["read_pixels"]

_PIXEL_DATA = 0x7FE00010

#: Padding of each gather-buffer row, in float32 (one 64-byte cache line).
_PAD = 16
#: Frames interleaved per pixel in the gather buffer and moved together as one 16-byte
#: unit (a complex128 view) by the transposition: a quarter of the elements to move, about
#: 15 % less time for the whole rescale and transposition (measured at 512 x 512 x 89).
_GROUP = 4


def _read_native(im: Image) -> np.ndarray:
    """Uncompressed stored values read from the file where the header pass found them.

    pydicom's decoding pipeline costs about 0.3 ms a file, more than reading the bytes:
    for a native frame whose values are its bytes (no bits to mask, see
    `headers._check_pixels`) the bytes are read directly. The file must be unchanged since
    its header was read.
    """
    offset, dtype = im.native
    n_bytes = im.size[0] * im.size[1] * np.dtype(dtype).itemsize
    with open(im.path, "rb") as fp:
        if os.fstat(fp.fileno()).st_mtime != im.header.timestamp:
            raise InputError(im.path, "changed since its header was read")
        fp.seek(offset)
        data = fp.read(n_bytes)
    if len(data) != n_bytes:
        raise InputError(im.path, f"truncated: {len(data)} of {n_bytes} bytes of pixel data")
    return np.frombuffer(data, dtype=dtype).reshape(im.size)


def _decode(im: Image) -> np.ndarray:
    """Stored pixel values of ``im``'s file: (rows, columns), or (frames, rows, columns)."""
    if im.native is not None:
        return _read_native(im)
    try:  # the header's deferred pixel data are read now, and dropped once decoded
        arr = pixel_array(im.header, decoding_plugin=im.plugin)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # decoders raise many kinds; Rust ones panic (BaseException)
        raise InputError(
            im.path, f"cannot read its pixel data ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        im.header.pop(_PIXEL_DATA, None)
    if arr.shape[-2:] != im.size:
        raise InputError(
            im.path,
            f"pixel data of shape {arr.shape}, expected {im.size[0]} x {im.size[1]} "
            "(Rows x Columns)",
        )
    return arr


def _rescale_into(dest: np.ndarray, stored: np.ndarray, im: Image) -> None:
    """``dest`` (columns, rows) float32 <- stored (rows, columns) through the modality LUT.

    A *Modality LUT Sequence* goes through `pydicom.pixels.apply_modality_lut`; the usual
    linear rescale is the same operation (``stored * slope + intercept``) done in float32,
    without the float64 intermediate pydicom returns.
    """
    if im.lut is not None:
        dest[...] = apply_modality_lut(stored, im.lut).T
    elif im.slope == 1.0:  # one pass over ``dest``, a strided view (see `read_pixels`)
        np.add(stored.T, np.float32(im.intercept), out=dest, casting="unsafe")
    else:
        np.multiply(stored.T, np.float32(im.slope), out=dest, casting="unsafe")
        dest += np.float32(im.intercept)


def read_pixels(per_slice: list[list[Image]], workers: int | None) -> np.ndarray:
    """Decode and rescale every image into a C-ordered ``(x, y, z, t)`` float32 array.

    Parameters
    ----------
    per_slice : list of list of Image
        ``per_slice[z][t]``: the images in slice and time order, all of one size.
    workers : int or None
        Decoding threads (default up to 4).

    Returns
    -------
    ndarray, shape (columns, rows, z, t), float32
        Physical values (HU for CT) after the modality LUT.
    """
    rows, cols = per_slice[0][0].size
    nz, nt, n_pix = len(per_slice), len(per_slice[0]), rows * cols
    out = np.empty((cols, rows, nz, nt), dtype=np.float32)
    multi = {  # enhanced multi-frame files: decoded once, frames taken from them
        im.path: None for frames in per_slice for im in frames if im.frame is not None
    }
    for path in multi:
        first = next(im for frames in per_slice for im in frames if im.path == path)
        multi[path] = _decode(first)
    compressed = any(im.native is None and im.frame is None for f in per_slice for im in f)
    n_buffers = 2 if compressed and nz > 1 else 1
    n_grouped = nt // _GROUP * _GROUP  # frames moved in groups; the others one by one
    buffers = [
        np.empty((nt // _GROUP, n_pix * _GROUP + _PAD), dtype=np.float32) for _ in range(n_buffers)
    ]

    def fill(s: int, k: int, im: Image) -> None:
        if im.frame is None:
            stored = _decode(im)
        else:
            arr = multi[im.path]
            stored = arr if arr.ndim == 2 else arr[im.frame]
        if k < n_grouped:  # frame k's place in its group: every _GROUP-th float of a row
            row = buffers[s % n_buffers][k // _GROUP, : n_pix * _GROUP]
            dest = row.reshape(n_pix, _GROUP)[:, k % _GROUP].reshape(cols, rows)
        else:
            dest = out[:, :, s, k]
        _rescale_into(dest, stored, im)

    def transpose(s: int) -> None:
        if n_grouped:
            src = buffers[s % n_buffers][:, : n_pix * _GROUP].view(np.complex128)
            dst = out[:, :, s, :n_grouped].reshape(n_pix, n_grouped).view(np.complex128)
            dst[...] = src.T

    if not compressed:  # one thread: threads sharing a core were measured slower
        for s, frames in enumerate(per_slice):
            for k, im in enumerate(frames):
                fill(s, k, im)
            transpose(s)
        return out
    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(n_workers) as pool:

        def submit(s: int) -> list[Future]:
            return [pool.submit(fill, s, k, im) for k, im in enumerate(per_slice[s])]

        pending = submit(0)
        for s in range(nz):
            for future in pending:
                future.result()
            pending = submit(s + 1) if s + 1 < nz else []
            transpose(s)
    return out
