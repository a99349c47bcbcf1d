"""DICOM headers: where, when and how each image of a folder was acquired.

The header model shared by the readers: one `Image` per 2D image (a single-frame file or
one frame of an enhanced multi-frame CT file) with its position, orientation, pixel
spacing, candidate times and rescale, every value checked where it is read (`values`).

`read_header` sorts each file into one of three kinds:

- not an image of a series (not DICOM, unreadable, a DICOMDIR, a file without
  *SeriesInstanceUID* such as a Philips DIRFILE, a structured report or other object
  without pixel data): `NotAnImage` is raised, and the folder listing skips the file and
  says so in ``Study.problems``;
- an image of a series whose header holds a malformed or implausible value: a `DicomFile`
  with a ``defect``, an `InputError` only if its series is read;
- an image: a `DicomFile` with its `Image`\\ s.

A file without the 128-byte preamble and file meta information (as some old scanners and
archives write) is read when its first element is a group 0002 or 0008 element: pydicom
detects its encoding (implicit or explicit VR little endian) and the file is an image like
any other when it holds one. Anything else without the ``DICM`` marker is not DICOM.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ...errors import InputError
from ..atomic import MANIFEST
from .codecs import check_decoder, decoding_plugin
from .enhanced import enhanced_images
from .image import Image, classic_image
from .values import integer, tag_name, text

__all__ = ["NotAnImage", "DicomFile", "read_header", "read_headers", "label"]

#: Names skipped without being read (recorded in ``Study.problems``).
HARMLESS_NAMES = frozenset({"dicomdir", ".ds_store", "thumbs.db", "desktop.ini"})
HARMLESS_SUFFIXES = frozenset({".txt", ".json", ".md", ".html", ".pdf", ".xml", ".csv"})

#: Elements longer than this (bytes) are read only when used: the pixel data.
_DEFER_BYTES = 16384
_PIXEL_DATA = 0x7FE00010
_DICOMDIR = "1.2.840.10008.1.3.10"
#: Largest image side accepted (pixels): CT is 512 or 1024; a larger value is a damaged
#: header that would make a decoder allocate gigabytes.
MAX_SIDE = 4096


class NotAnImage(InputError):
    """A file that is not an image of a series: skipped when a folder is read."""


@dataclass
class DicomFile:
    """Header of one image file and its images (none when it has a ``defect``)."""

    path: Path
    ds: Dataset
    series_uid: str
    images: list[Image]
    defect: str | None = None  # why it has no images (an error only if its series is read)


def label(im: Image) -> str:
    return im.path.name + (f" frame {im.frame + 1}" if im.frame is not None else "")


# ----------------------------------------------------------------------------- parsing
def _dcmread(path: Path, *, force: bool = False) -> Dataset:
    """pydicom's header read over a memory map of the file, pixel data deferred.

    pydicom trusts element lengths, and a read from a Python file allocates the size asked
    for before reading: one damaged length (4 GB) would allocate gigabytes for a 500 kB
    file. A memory map returns only what the file holds. The dataset then names the file,
    so that pydicom reads deferred elements (the pixel data) from it when they are used.
    """
    with open(path, "rb") as fp:
        stat = os.fstat(fp.fileno())
        if stat.st_size == 0:
            raise NotAnImage(path, "an empty file")
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as view:
            ds = pydicom.dcmread(view, defer_size=_DEFER_BYTES, force=force)
    ds.filename, ds.fileobj_type, ds.buffer = str(path), open, None
    ds.timestamp = stat.st_mtime
    return ds


def _parse(path: Path) -> Dataset:
    """The file's dataset, pixel data deferred (read by pydicom when decoded)."""
    try:
        return _dcmread(path)
    except NotAnImage:
        raise
    except InvalidDicomError:
        pass
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise NotAnImage(path, f"unreadable DICOM header ({type(exc).__name__}: {exc})") from None
    with open(path, "rb") as fp:
        head = fp.read(4)
    group = int.from_bytes(head[:2], "little") if len(head) == 4 else -1
    if group not in (0x0002, 0x0008):
        raise NotAnImage(path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)")
    try:
        ds = _dcmread(path, force=True)
        implicit, little = ds.original_encoding
    except Exception as exc:  # a dataset that does not parse
        raise NotAnImage(
            path, f"no DICOM preamble and unreadable as a bare dataset ({type(exc).__name__})"
        ) from None
    if not little:
        raise NotAnImage(path, "no DICOM preamble and big endian: not read")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        )
    return ds


def _pixel_element(ds: Dataset):
    """The PixelData element without reading a deferred value (None when absent)."""
    return ds.get_item(_PIXEL_DATA, keep_deferred=True)


#: Native (uncompressed little endian) transfer syntaxes.
_NATIVE = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})


def _check_pixels(path: Path, ds: Dataset) -> tuple[int, str] | None:
    """The pixel description and the pixel data agree and are what a CT image holds.

    Returns
    -------
    (offset, dtype) or None
        Where in the file a single native frame lies and its numpy dtype, when its stored
        values are its bytes as they are (no bits to mask): `pixels` reads them directly.
    """
    rows = integer(ds, "Rows", path, low=1, high=MAX_SIDE)
    columns = integer(ds, "Columns", path, low=1, high=MAX_SIDE)
    if rows is None or columns is None:
        raise InputError(path, f"{tag_name('Rows')} or {tag_name('Columns')} is missing")
    bits = integer(ds, "BitsAllocated", path, default=16)
    if bits not in (8, 16, 32):
        raise InputError(path, f"{tag_name('BitsAllocated')}: expected 8, 16 or 32, got {bits}")
    stored = integer(ds, "BitsStored", path, default=bits, low=1, high=bits)
    integer(ds, "HighBit", path, default=stored - 1, low=stored - 1, high=bits - 1)
    integer(ds, "PixelRepresentation", path, default=0, low=0, high=1)
    integer(ds, "SamplesPerPixel", path, default=1, low=1, high=1)
    photometric = text(ds, "PhotometricInterpretation", path, default="MONOCHROME2")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            path,
            f"{tag_name('PhotometricInterpretation')}: expected a grey-scale image "
            f"(MONOCHROME1 or MONOCHROME2), got {photometric!r}",
        )
    frames = integer(ds, "NumberOfFrames", path, default=1, low=1, high=1_000_000)
    syntax = text(ds.file_meta, "TransferSyntaxUID", path)
    if not syntax:
        raise InputError(path, f"{tag_name('TransferSyntaxUID')} is missing")
    check_decoder(f"{path}: {tag_name('TransferSyntaxUID')}", syntax)
    element = _pixel_element(ds)
    if UID(syntax).is_compressed or element.length == 0xFFFFFFFF:
        return None
    expected = rows * columns * frames * bits // 8
    if element.length not in (expected, expected + 1):
        raise InputError(
            path,
            f"{tag_name('PixelData')} holds {element.length} bytes where Rows x Columns x "
            f"NumberOfFrames x BitsAllocated / 8 = {rows} x {columns} x {frames} x {bits} / 8 "
            f"= {expected}",
        )
    tell = getattr(element, "value_tell", None)
    held = len(element.value) if isinstance(element.value, bytes) else None
    if held is None and tell is not None:  # deferred: its bytes must all be in the file
        held = max(0, os.stat(path).st_size - tell)
    if held is not None and held < element.length:
        raise InputError(
            path,
            f"truncated: the pixel data should have {element.length} bytes, the file holds {held}",
        )
    if syntax in _NATIVE and frames == 1 and stored == bits and element.value is None:
        signed = integer(ds, "PixelRepresentation", path, default=0) == 1
        return tell, f"<{'i' if signed else 'u'}{bits // 8}"
    return None


def read_header(path: Path) -> DicomFile:
    """Header pass over one file (pixel data not read): its images, if it holds any.

    Raises
    ------
    NotAnImage
        The file is not an image of a series (see the module docstring).
    """
    ds = _parse(path)
    try:
        sop = text(ds.file_meta, "MediaStorageSOPClassUID", path) or text(ds, "SOPClassUID", path)
        series_uid = text(ds, "SeriesInstanceUID", path)
    except InputError as exc:
        raise NotAnImage(path, exc.problem) from None
    if sop == _DICOMDIR:
        raise NotAnImage(path, "a DICOMDIR (the files it lists are read where they lie)")
    if not series_uid:
        raise NotAnImage(
            path, "no SeriesInstanceUID: not an image of a series (an index file, or cut short)"
        )
    is_image = "Image Storage" in UID(sop).name if sop else False
    if _pixel_element(ds) is None:
        if not is_image:
            what = UID(sop).name if sop else "no SOPClassUID"
            raise NotAnImage(path, f"no pixel data ({what})")
        defect = "truncated: the file ends before its pixel data"
        return DicomFile(path, ds, series_uid, [], defect)
    try:
        native = _check_pixels(path, ds)
        if "PerFrameFunctionalGroupsSequence" in ds:
            images = enhanced_images(path, ds)
        elif integer(ds, "NumberOfFrames", path, default=1) > 1:
            raise InputError(
                path,
                "multi-frame image without per-frame functional groups: the positions and "
                "times of its frames are unknown",
            )
        else:
            images = [classic_image(path, ds)]
            images[0].native = native
    except InputError as exc:
        return DicomFile(path, ds, series_uid, [], exc.problem)
    plugin = decoding_plugin(str(ds.file_meta.TransferSyntaxUID))
    for image in images:
        image.plugin = plugin
    return DicomFile(path, ds, series_uid, images)


# ----------------------------------------------------------------------------- folders
def list_files(folder: Path, problems: list[str]) -> list[Path]:
    """Every file under ``folder`` (sorted); harmless non-image files are skipped."""
    if not folder.exists():
        raise InputError(folder, "does not exist")
    if folder.is_file():
        return [folder]
    paths = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            low = name.lower()
            if name == MANIFEST:
                continue  # ctpmaps' own record of the files it wrote there
            if (
                low in HARMLESS_NAMES
                or Path(low).suffix in HARMLESS_SUFFIXES
                or low.startswith("._")
            ):
                problems.append(f"skipped {path.relative_to(folder)}: not image data")
                continue
            paths.append(path)
    if not paths:
        raise InputError(
            folder, "no DICOM files found (the folder is empty or holds only DICOMDIR/text files)"
        )
    return paths


def read_headers(folder: Path, problems: list[str]) -> tuple[list[DicomFile], list[str]]:
    """The image files under ``folder`` and the files skipped (``"name: why"`` each).

    One thread: parsing a header is Python work that holds the GIL, and threads over
    warm files only share a core (measured slower).

    Raises
    ------
    InputError
        No image file at all (naming the first files skipped and why).
    """

    def one(path: Path) -> DicomFile | NotAnImage:
        try:
            return read_header(path)
        except NotAnImage as exc:
            return exc

    files, skipped = [], []
    paths = list_files(folder, problems)
    for path, result in zip(paths, map(one, paths), strict=True):
        if isinstance(result, NotAnImage):
            name = path.relative_to(folder) if path != folder else path.name
            skipped.append(f"{name}: {result.problem}")
        else:
            files.append(result)
    if not files:
        shown = "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        source = paths[0] if folder.is_file() else folder
        raise InputError(source, f"no DICOM image file among {len(paths)} files ({shown})")
    problems.extend(f"skipped {line}" for line in skipped)
    return files, skipped
