"""Seeded mutations of one file of a study: what the fuzzer feeds the readers.

Each mutator changes one thing in one file (or adds, removes or copies one file) and
returns a short ``kind`` naming what it did, e.g. ``"dicom:value:RescaleSlope:nan"``.

DICOM mutations work on the bytes of explicit VR little endian files: an element (at the
top level or inside a sequence) is found by its encoded bytes and replaced, so that any
value, value representation or length can be written, however malformed. NIfTI mutations
change header fields, the gzip stream or the JSON sidecar.

The module stays whole: it is one catalogue (the mutators and the table that names them),
read and extended as a list.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ..atomic import MANIFEST

__all__ = [
    "mutate_dicom",
    "mutate_nifti",
    "set_raw",
    "set_transfer_syntax",
    "set_nifti_field",
    "modality_lut",
]

_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
)

#: Elements the readers use: mutated more often than the others.
INTERESTING = frozenset(
    """ImagePositionPatient ImageOrientationPatient PixelSpacing Rows Columns BitsAllocated
    BitsStored HighBit PixelRepresentation SamplesPerPixel PhotometricInterpretation
    NumberOfFrames RescaleSlope RescaleIntercept RescaleType WindowCenter WindowWidth
    AcquisitionDateTime AcquisitionDate AcquisitionTime ContentDate ContentTime TriggerTime
    InstanceNumber TemporalPositionIndex SliceThickness SpacingBetweenSlices KVP Exposure
    SeriesInstanceUID StudyInstanceUID SOPInstanceUID SOPClassUID FrameOfReferenceUID Modality
    ImageType PatientName PatientID SeriesDescription PixelData FrameAcquisitionDateTime
    PerFrameFunctionalGroupsSequence SharedFunctionalGroupsSequence PlanePositionSequence
    PixelValueTransformationSequence SpecificCharacterSet""".split()
)

# fmt: off
_NUMBERS = [b"", b"abc", b"1\\2\\3", b"nan", b"inf", b"-inf", b"1e400", b"9999999999999999",
            b"-0", b"0", b"1e-300", b"+", b" 12 ", b"\x00\x01", b"\xff\xfe", b"-1e9", b"3.5"]
_DATES = [b"", b"2024", b"99999999", b"20241399", b"256161", b"abc", b"19000101", b"\xff\xfe",
          b"20240101120000.123456+9999", b"000000", b"235959.999999"]
_UIDS = [b"", b"1.2.abc", b"1.2.840.10008.1.2.4.999", b"1." * 40, b"\xff\x00",
         b"1.2.840.10008.5.1.4.1.1.7", b"1.2.840.10008.1.3.10"]
_TEXTS = [b"", b"X" * 300, b"\xff\xfe\xfd", b"A\\B\\C", b"MONOCHROME3", b"MR", b"LOCALIZER",
          b"DERIVED\\SECONDARY\\SURVIEW", b"ISO_IR 999", b"\x1b$B"]
_VRS = [b"ZZ", b"UN", b"SQ", b"OB", b"US", b"DS", b"xx", b"\x00\x00", b"LO", b"FD"]
_TRANSFER_SYNTAXES = ["1.2.3.4", "1.2.826.0.1.3680043.9.9999.1", "1.2.840.10008.1.2.1.99",
                      "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
                      "1.2.840.10008.1.2.5", "1.2.840.10008.1.2", "", "1.2.840.10008.1.2.4.70"]
# fmt: on


def _pad(value: bytes, vr: str) -> bytes:
    return value + (b"\x00" if vr in ("UI", "OB", "UN") else b" ") * (len(value) % 2)


def _encode(tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
    """One explicit VR little endian element (``length`` overrides the value's)."""
    n = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("latin-1")[:2].ljust(2)
    if vr in _LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", n & 0xFFFFFFFF) + value
    return head + struct.pack("<H", n & 0xFFFF) + value


def _elements(ds: Dataset, found: list[tuple[int, str, bytes, int]]) -> None:
    """(tag, VR, value bytes, length) of every raw element, nested ones included."""
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)
        if not isinstance(elem, RawDataElement) or not elem.VR:
            continue
        value = elem.value if isinstance(elem.value, bytes) else b""
        found.append((int(tag), elem.VR, value, elem.length))
        if elem.VR == "SQ":
            try:
                items = ds[tag].value
            except Exception:  # a sequence pydicom cannot parse: not descended into
                continue
            for item in items:
                _elements(item, found)


def _located(data: bytes, elements, rng: np.random.Generator):
    """One element and the offset of one of its occurrences in ``data``."""
    interesting = [e for e in elements if keyword_for_tag(e[0]) in INTERESTING]
    pool = interesting if interesting and rng.random() < 0.7 else elements
    for _ in range(20):
        tag, vr, value, length = pool[int(rng.integers(len(pool)))]
        if vr == "SQ" and length == 0xFFFFFFFF:
            encoded = _encode(tag, vr, b"", length)
        elif vr == "SQ":
            encoded = _encode(tag, vr, b"", length)
        else:
            encoded = _encode(tag, vr, value, length)
        starts = []
        i = data.find(encoded)
        while i >= 0 and len(starts) < 64:
            starts.append(i)
            i = data.find(encoded, i + 1)
        if starts:
            return (tag, vr, value, length, encoded), starts[int(rng.integers(len(starts)))]
    return None, -1


def _new_value(vr: str, value: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if vr in ("DS", "IS"):
        pool = _NUMBERS
    elif vr in ("DA", "TM", "DT"):
        pool = _DATES
    elif vr == "UI":
        pool = _UIDS
    elif vr in ("US", "SS"):
        pool = [struct.pack("<H", v) for v in (0, 1, 7, 8, 12, 0xFFFF, 4097)] + [b"\x01", b""]
    elif vr in ("UL", "SL"):
        pool = [struct.pack("<I", v) for v in (0, 1, 0xFFFFFFFF)] + [b"\x01\x02"]
    elif vr in ("FL", "FD"):
        size = 4 if vr == "FL" else 8
        code = "<f" if size == 4 else "<d"
        pool = [struct.pack(code, v) for v in (float("nan"), float("inf"), -1e30, 0.0)] + [b"\x00"]
    elif vr in ("OB", "OW", "UN"):
        half = value[: len(value) // 2]
        pool = [half, value + value[:64], b"", bytes(rng.integers(0, 256, 64, dtype=np.uint8))]
    elif vr == "SQ":
        pool = [b"", b"\xfe\xff\x00\xe0\x10\x00\x00\x00garbage!", bytes(range(40))]
    else:
        pool = _TEXTS
    choice = int(rng.integers(len(pool)))
    return pool[choice], f"v{choice}"


def _splice(path: Path, rng: np.random.Generator) -> str:
    """Replace one element's value, VR or length, or delete it."""
    data = path.read_bytes()
    found: list = []
    try:
        _elements(pydicom.dcmread(path), found)
    except Exception:  # already damaged: flip bytes instead
        return _flip(path, rng)
    located, at = _located(data, found, rng)
    if located is None:
        return _flip(path, rng)
    tag, vr, value, length, encoded = located
    name = keyword_for_tag(tag) or f"{tag:08X}"
    how = rng.choice(["value", "value", "value", "vr", "length", "delete"])
    if how == "value":
        new, variant = _new_value(vr, value, rng)
        if vr not in ("US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "UN", "SQ"):
            new = _pad(new, vr)
        replacement = _encode(tag, vr, new)
        kind = f"value:{name}:{variant}"
    elif how == "vr":
        new_vr = _VRS[int(rng.integers(len(_VRS)))]
        replacement = encoded[:4] + new_vr + encoded[6:]
        kind = f"vr:{name}:{new_vr.decode('latin-1')}"
    elif how == "length":
        new_length = int(rng.choice([0, 1, 3, length + 2, 0xFFFF, 0xFFFFFFFE, 0xFFFFFFFF]))
        replacement = _encode(tag, vr, b"", new_length) + (b"" if vr == "SQ" else value)
        kind = f"length:{name}"
    else:
        replacement = b""
        kind = f"delete:{name}"
    path.write_bytes(data[:at] + replacement + data[at + len(encoded) :])
    return kind


def _flip(path: Path, rng: np.random.Generator) -> str:
    data = bytearray(path.read_bytes())
    if not data:
        return "flip:empty"
    n = int(rng.integers(1, 9))
    head = rng.random() < 0.8
    for _ in range(n):
        limit = min(len(data), 2048) if head else len(data)
        i = int(rng.integers(limit))
        data[i] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    return f"flip:{'header' if head else 'anywhere'}"


def _truncate(path: Path, rng: np.random.Generator) -> str:
    data = path.read_bytes()
    cut = int(rng.integers(0, max(1, len(data))))
    path.write_bytes(data[:cut])
    return "truncate"


def _meta_elements(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int]:
    """File meta elements (tag, VR, value) after the preamble and where the dataset starts."""
    at, out = 132, []
    while at + 8 <= len(data) and data[at : at + 2] == b"\x02\x00":
        tag = (0x0002 << 16) | struct.unpack("<H", data[at + 2 : at + 4])[0]
        vr = data[at + 4 : at + 6]
        if vr.decode("latin-1") in _LONG_VRS:
            n, head = struct.unpack("<I", data[at + 8 : at + 12])[0], 12
        else:
            n, head = struct.unpack("<H", data[at + 6 : at + 8])[0], 8
        out.append((tag, vr, data[at + head : at + head + n]))
        at += head + n
    return out, at


def set_transfer_syntax(path: Path, uid: str) -> None:
    """Write ``uid`` as the file meta's *TransferSyntaxUID*; dataset and pixels unchanged."""
    data = Path(path).read_bytes()
    elements, end = _meta_elements(data)
    body = b"".join(
        _encode(tag, vr.decode("latin-1"), _pad(uid.encode(), "UI") if tag == 0x00020010 else value)
        for tag, vr, value in elements
        if tag != 0x00020000
    )
    group = _encode(0x00020000, "UL", struct.pack("<I", len(body)))
    Path(path).write_bytes(data[:132] + group + body + data[end:])


def _transfer_syntax(path: Path, rng: np.random.Generator) -> str:
    uid = _TRANSFER_SYNTAXES[int(rng.integers(len(_TRANSFER_SYNTAXES)))]
    set_transfer_syntax(path, uid)
    return f"transfer-syntax:{uid or 'empty'}"


def set_raw(path: Path, keyword: str, value: bytes, *, vr: str | None = None) -> None:
    """Write ``value`` (bytes, however malformed) as element ``keyword`` of a DICOM file.

    ``vr`` defaults to the dictionary's; the file is rewritten in explicit VR little endian.
    """
    ds = pydicom.dcmread(path)
    tag = Tag(tag_for_keyword(keyword))
    vr = vr or dictionary_VR(tag).split(" ")[0]
    ds[tag] = RawDataElement(tag, vr, len(value), _pad(value, vr), 0, False, True)
    _save(path, ds)


def _save(path: Path, ds: Dataset) -> None:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    path.write_bytes(buffer.getvalue())


def modality_lut(entries: int, first: int, n_data: int, seed: int = 0) -> Dataset:
    """A Modality LUT Sequence item (consistent only when ``entries == n_data``)."""
    item = Dataset()
    item.LUTDescriptor = [entries, first, 16]
    item.ModalityLUTType = "HU"
    table = np.random.default_rng(seed).integers(0, 4096, n_data).astype("<u2")
    item.add_new(0x00283006, "OW", table.tobytes())  # LUTData
    return item


def _insert(path: Path, rng: np.random.Generator) -> str:
    """Add an element the readers use when present, well formed or not."""
    what = str(rng.choice(["NumberOfFrames", "ModalityLUTSequence", "TriggerTime", "WindowCenter"]))
    if what == "ModalityLUTSequence":
        ds = pydicom.dcmread(path)
        entries, first = int(rng.choice([0, 4, 256])), int(rng.choice([0, -2000, 4000]))
        ds.ModalityLUTSequence = [modality_lut(entries, first, int(rng.choice([0, 3, 4, 256])))]
        _save(path, ds)
    else:
        value = bytes(rng.choice([b"0", b"2", b"-1", b"abc", b"1.5", b"1", b"40\\60", b"nan"]))
        set_raw(path, what, value)
    return f"insert:{what}"


def _series_files(folder: Path) -> list[Path]:
    """The series' files (not the manifest ctpmaps writes beside them), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _stray(folder: Path, rng: np.random.Generator) -> str:
    what = rng.choice(["random", "text", "empty", "no-series", "no-preamble"])
    target = folder / f"stray_{what}"
    if what == "random":
        target.write_bytes(bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8)))
    elif what == "text":
        target.write_text("exported by a viewer\n")
    elif what == "empty":
        target.write_bytes(b"")
    else:
        source = _series_files(folder)[0]
        ds = pydicom.dcmread(source)
        if what == "no-series":
            del ds.SeriesInstanceUID
            ds.save_as(target, enforce_file_format=True)
        else:
            ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
            ds.save_as(target, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return f"stray:{what}"


def mutate_dicom(folder: Path, rng: np.random.Generator) -> str:
    """Change one file of the DICOM series under ``folder`` (or add, copy or remove one)."""
    files = _series_files(Path(folder))
    target = files[int(rng.integers(len(files)))]
    what = rng.choice(
        ["splice"] * 8 + ["flip", "flip", "truncate", "transfer-syntax", "insert", "insert",
                          "stray", "duplicate", "remove", "preamble"]
    )  # fmt: skip
    if what == "splice":
        kind = _splice(target, rng)
    elif what == "flip":
        kind = _flip(target, rng)
    elif what == "truncate":
        kind = _truncate(target, rng)
    elif what == "transfer-syntax":
        kind = _transfer_syntax(target, rng)
    elif what == "insert":
        kind = _insert(target, rng)
    elif what == "stray":
        kind = _stray(Path(folder), rng)
    elif what == "duplicate":
        shutil.copy(target, target.with_name(target.name + ".copy"))
        kind = "duplicate"
    elif what == "remove":
        target.unlink()
        kind = "remove" if len(files) > 1 else "remove-only"
    else:
        data = bytearray(target.read_bytes())
        data[128:132] = b"DICN"
        target.write_bytes(bytes(data))
        kind = "preamble"
    return f"dicom:{kind}"


# ----------------------------------------------------------------------------- NIfTI
#: NIfTI-1 header fields: name -> (offset, struct code, count).
_FIELDS = {
    "sizeof_hdr": (0, "<i", 1), "dim": (40, "<h", 8), "datatype": (70, "<h", 1),
    "bitpix": (72, "<h", 1), "pixdim": (76, "<f", 8), "vox_offset": (108, "<f", 1),
    "scl_slope": (112, "<f", 1), "scl_inter": (116, "<f", 1), "xyzt_units": (123, "<B", 1),
    "qform_code": (252, "<h", 1), "sform_code": (254, "<h", 1), "quatern": (256, "<f", 3),
    "qoffset": (268, "<f", 3), "srow_x": (280, "<f", 4), "srow_y": (296, "<f", 4),
    "srow_z": (312, "<f", 4), "magic": (344, "4s", 1),
}  # fmt: skip


def _field_value(code: str, rng: np.random.Generator):
    if code == "<f":
        return float(rng.choice([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30, 3.0]))
    if code == "4s":
        return bytes(rng.choice([b"n+1\x00", b"ni1\x00", b"xxxx", b"n+2\x00"]))
    if code == "<B":
        return int(rng.integers(0, 256))
    top = 2**31 - 1 if code == "<i" else 32767
    return int(rng.choice([0, -1, 1, 2, 5, 7, 8, 16, 64, 512, 30000, top]))


def _with_field(raw: bytes, name: str, index: int, value) -> bytes:
    offset, code, _ = _FIELDS[name]
    size = struct.calcsize(code)
    data = bytearray(raw)
    data[offset + index * size : offset + (index + 1) * size] = struct.pack(code, value)
    return bytes(data)


def set_nifti_field(path: Path, name: str, index: int, value) -> None:
    """Overwrite item ``index`` of NIfTI-1 header field ``name`` (e.g. ``"srow_x", 0``)."""
    path = Path(path)
    gz = path.name.endswith(".gz")
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    raw = _with_field(raw, name, index, value)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)


def _header(raw: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    name = list(_FIELDS)[int(rng.integers(len(_FIELDS)))]
    _, code, count = _FIELDS[name]
    i = int(rng.integers(count))
    return _with_field(raw, name, i, _field_value(code, rng)), f"header:{name}[{i}]"


def _sidecar(side: Path, rng: np.random.Generator) -> str:
    meta = json.loads(side.read_text())
    times = meta.get("FrameTimes", [0, 1])
    variants = {
        "not-utf8": lambda: side.write_bytes(b'{"FrameTimes": [0, 1], "x": "\xff\xfe"}'),
        "not-json": lambda: side.write_text("{FrameTimes: [0, 1"),
        "array": lambda: side.write_text(json.dumps(times)),
        "string": lambda: side.write_text('"hello"'),
        "nan": lambda: side.write_text('{"FrameTimes": [0, NaN, 2, 3, 4]}'),
        "strings": lambda: side.write_text(json.dumps({"FrameTimes": [str(t) for t in times]})),
        "nulls": lambda: side.write_text(json.dumps({"FrameTimes": [None] * len(times)})),
        "nested": lambda: side.write_text(json.dumps({"FrameTimes": [[t] for t in times]})),
        "short": lambda: side.write_text(json.dumps({"FrameTimes": times[:-1]})),
        "decreasing": lambda: side.write_text(json.dumps({"FrameTimes": times[::-1]})),
        "huge": lambda: side.write_text(json.dumps({"FrameTimes": [t * 1e300 for t in times]})),
        "bools": lambda: side.write_text(json.dumps({"FrameTimes": [True] * len(times)})),
        "ms": lambda: side.write_text(json.dumps({"FrameTimes": [t * 1000 for t in times]})),
        "units": lambda: side.write_text(
            json.dumps({"FrameTimes": times, "FrameTimesUnits": rng.choice(["ms", "h", 3])})
        ),
        "deep": lambda: side.write_text("[" * 100000 + "]" * 100000),
        "empty": lambda: side.write_bytes(b""),
        "removed": lambda: side.unlink(),
    }
    name = list(variants)[int(rng.integers(len(variants)))]
    variants[name]()
    return f"sidecar:{name}"


def mutate_nifti(path: Path, rng: np.random.Generator) -> str:
    """Change the NIfTI file at ``path`` (header, data, gzip stream) or its sidecar."""
    path = Path(path)
    side = path.with_name(path.name.split(".")[0] + ".json")
    gz = path.name.endswith(".gz")
    what = rng.choice(["header"] * 5 + ["data", "sidecar", "sidecar", "sidecar", "truncate"]
                      + (["gzip"] * 3 if gz else []))  # fmt: skip
    if what == "sidecar" and side.exists():
        return f"nifti:{_sidecar(side, rng)}"
    if what == "truncate":
        return f"nifti:{_truncate(path, rng)}"
    if what == "gzip":
        data = bytearray(path.read_bytes())
        how = rng.choice(["flip", "crc", "isize", "junk", "plain"])
        if how == "flip":
            i = int(rng.integers(10, max(11, len(data) - 8)))
            data[i] ^= int(rng.integers(1, 256))
        elif how in ("crc", "isize"):
            data[-8 if how == "crc" else -4] ^= 0xFF
        elif how == "junk":
            data += bytes(rng.integers(0, 256, 100, dtype=np.uint8))
        else:
            data = bytearray(gzip.decompress(bytes(data)))
        path.write_bytes(bytes(data))
        return f"nifti:gzip:{how}"
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    if what == "data":
        data = bytearray(raw)
        for _ in range(int(rng.integers(1, 20))):
            i = int(rng.integers(352, len(data)))
            data[i] ^= int(rng.integers(1, 256))
        raw, kind = bytes(data), "data:flip"
    else:
        raw, kind = _header(raw, rng)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return f"nifti:{kind}"
