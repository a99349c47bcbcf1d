"""Pixel codecs: which transfer syntaxes decode and encode here, and a fast JPEG Lossless.

Decoding and encoding go through pydicom's plugins. Two gaps are filled here:

- pydicom decodes JPEG Lossless with pylibjpeg-libjpeg at ~25 ms per 512 x 512 image, so a
  real UniToBrain raw series (712 such files) takes ~18 s. imagecodecs (libjpeg-turbo) does
  it in ~4 ms and is registered as one more pydicom decoding plugin (`FAST_JPEG_PLUGIN`),
  asked for by name for these transfer syntaxes when installed. This module provides
  pydicom's plugin protocol: `is_available(uid)`, `DECODER_DEPENDENCIES` and the frame
  decoder `decode_jpeg_lossless`.
- pydicom has no JPEG Lossless encoder; `encode_jpeg_lossless` writes it with imagecodecs;
- RLE Lossless is decoded by pydicom's own decoder (see `decoding_plugin`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from ...errors import InputError

__all__ = [
    "COMPRESSIONS",
    "DECODER_PACKAGES",
    "FAST_JPEG_PLUGIN",
    "check_decoder",
    "check_encoder",
    "decoding_plugin",
    "encoding_plugin",
    "encode_jpeg_lossless",
]

#: ``compression`` names accepted by the writers and their transfer syntaxes.
COMPRESSIONS = {
    None: ExplicitVRLittleEndian,
    "jpeg-lossless": JPEGLosslessSV1,
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
    "rle": RLELossless,
}

#: What to install for each compressed transfer syntax (pydicom's decoder plugins).
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg and pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg and pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg and pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg and pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg and pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg and pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg and pylibjpeg-rle",
}


# ----------------------------------------------------------------------------- decoding
def check_decoder(source: object, transfer_syntax: str) -> None:
    """Fail, naming ``source``, when pixel data in ``transfer_syntax`` cannot be decoded here.

    Raises
    ------
    InputError
        An unknown, private or deflated transfer syntax that pydicom cannot decode, or a
        compressed one whose decoder plugin is not installed (with what to install).
    """
    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        raise InputError(source, f"TransferSyntaxUID {uid!r} is not a known transfer syntax")
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise InputError(
            source,
            f"pixel data use the transfer syntax {uid.name} ({uid}), which pydicom cannot decode",
        ) from None
    if not decoder.is_available:
        package = DECODER_PACKAGES.get(str(uid), "a pydicom decoder plugin for it")
        raise InputError(
            source,
            f"pixel data are compressed as {uid.name} ({uid}) and no decoder for it is "
            f"installed: install {package}",
        )


FAST_JPEG_PLUGIN = "ctpmaps-imagecodecs"
_FAST_JPEG_SYNTAXES = (JPEGLossless, JPEGLosslessSV1)
DECODER_DEPENDENCIES = {uid: ("imagecodecs",) for uid in _FAST_JPEG_SYNTAXES}


def is_available(uid: str) -> bool:
    """pydicom plugin protocol: whether `decode_jpeg_lossless` can decode ``uid``."""
    if uid not in _FAST_JPEG_SYNTAXES:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(imagecodecs.JPEG8.available)


def decode_jpeg_lossless(src: bytes, runner: Any) -> bytes:
    """pydicom plugin protocol: one JPEG Lossless (process 14) frame -> raw little-endian bytes."""
    import imagecodecs

    arr = imagecodecs.jpeg8_decode(src)
    if arr.dtype.itemsize * 8 != runner.bits_allocated:
        arr = arr.astype(f"<u{runner.bits_allocated // 8}")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


@functools.cache
def _register_fast_jpeg() -> bool:
    """Add the imagecodecs plugin to pydicom's JPEG Lossless decoders (once per process)."""
    for uid in _FAST_JPEG_SYNTAXES:
        try:
            get_decoder(uid).add_plugin(FAST_JPEG_PLUGIN, (__name__, "decode_jpeg_lossless"))
        except ValueError:  # already registered (this module reloaded)
            pass
    return FAST_JPEG_PLUGIN in get_decoder(JPEGLossless).available_plugins


def decoding_plugin(transfer_syntax: str) -> str:
    """The plugin to ask pydicom for: the fast one where it applies, else "" (any).

    RLE Lossless goes to pydicom's own decoder: pylibjpeg-rle is about 9 times faster but
    panics on corrupted data (a Rust panic, printed on stderr before Python sees it; found
    by fuzzing), and RLE is rare in CT.
    """
    if transfer_syntax in _FAST_JPEG_SYNTAXES and _register_fast_jpeg():
        return FAST_JPEG_PLUGIN
    if transfer_syntax == RLELossless:
        return "pydicom"
    return ""


# ----------------------------------------------------------------------------- encoding
def encode_jpeg_lossless(arr: np.ndarray) -> bytes:
    """JPEG Lossless process 14, selection value 1 (1.2.840.10008.1.2.4.70) of one frame.

    pydicom has no encoder for this transfer syntax. ``imagecodecs.jpeg8_encode`` (libjpeg-turbo
    3) writes lossless JPEG (SOF3) with a chosen predictor: predictor 1 and no point transform
    is exactly "first-order prediction" (SV1), and pydicom's decoders (pylibjpeg-libjpeg) read
    it back bit-exactly. ``imagecodecs.ljpeg_encode`` (liblj92) is not used: it always writes
    predictor 6, which is only valid for 1.2.840.10008.1.2.4.57.
    """
    import imagecodecs

    data = np.ascontiguousarray(arr).view(np.uint16)  # the codec sees the stored bit patterns
    # optimize=False: no second pass for Huffman tables (a third faster, same size here)
    return bytes(
        imagecodecs.jpeg8_encode(data, lossless=True, predictor=1, bitspersample=16, optimize=False)
    )


def check_encoder(compression: str | None) -> None:
    """Fail before writing anything when ``compression`` cannot be encoded here."""
    if compression not in COMPRESSIONS:
        raise InputError(
            "compression", f"expected one of {list(COMPRESSIONS)}, got {compression!r}"
        )
    if compression is None:
        return
    if compression == "jpeg-lossless":
        try:
            import imagecodecs
        except ImportError:
            raise InputError(
                "compression",
                "'jpeg-lossless' needs the imagecodecs package (pip install imagecodecs); "
                "use compression=None, 'jpeg-ls', 'jpeg2000' or 'rle' instead",
            ) from None
        if not imagecodecs.JPEG8.available:
            raise InputError("compression", "'jpeg-lossless': imagecodecs lacks its JPEG8 codec")
        return
    encoder = get_encoder(COMPRESSIONS[compression])
    if not encoder.is_available:
        missing = "; ".join(encoder.missing_dependencies)
        raise InputError("compression", f"{compression!r}: no encoder available ({missing})")


def encoding_plugin(compression: str) -> str:
    """Preferred pydicom encoding plugin: the compiled RLE encoder when present."""
    if compression == "rle":
        return "pylibjpeg" if "pylibjpeg" in get_encoder(RLELossless).available_plugins else ""
    return ""
