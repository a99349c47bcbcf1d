"""Writing a `Study` as a scanner-like CT DICOM series (one file per slice and frame).

The layout follows what CT perfusion scanners export: one *CT Image Storage* instance per
slice and time point, signed or unsigned 16-bit pixels with *Rescale Intercept/Slope*
giving HU, geometry in LPS (converted from the study's RAS+ affine), and per-frame
acquisition and content times with fractional seconds.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLosslessSV1

from ...errors import InputError
from ..atomic import atomic_dir
from ..study import Study
from .attributes import DEFAULT_START, SeriesOptions, base_dataset, new_instance, place_slice
from .codecs import COMPRESSIONS, check_encoder, encode_jpeg_lossless, encoding_plugin
from .derived import identity_of, source_image_item, source_mismatch, source_start
from .geometry import SliceGeometry, slice_geometry
from .source import ImageRef
from .uids import new_uid

__all__ = ["write_dicom_study", "write_dicom_volume", "COMPRESSIONS"]

log = logging.getLogger(__name__)

ORIGINAL = ("ORIGINAL", "PRIMARY", "AXIAL")


def _stored_values(
    frames: np.ndarray, *, slope: float, intercept: float, signed: bool
) -> tuple[np.dtype, float, float]:
    """Stored dtype and the HU range it can hold; warns once about values it will clip."""
    dtype = np.dtype(np.int16 if signed else np.uint16)
    info = np.iinfo(dtype)
    lo, hi = info.min * slope + intercept, info.max * slope + intercept
    n_clip = int(np.count_nonzero((frames < lo) | (frames > hi)))
    if n_clip:
        log.warning(
            "%d voxels outside the storable range [%g, %g] HU (%s, slope %g, intercept %g) "
            "are clipped",
            n_clip,
            lo,
            hi,
            dtype.name,
            slope,
            intercept,
        )
    return dtype, lo, hi


#: Frames of one slice gathered at once from the t-last (x, y, z, t) array, in blocks of
#: columns: much faster than reading one strided image at a time.
_CHUNK, _BLOCK = 16, 16


def _stored_chunk(
    frames: np.ndarray,
    s: int,
    k0: int,
    o: SeriesOptions,
    dtype: np.dtype,
    limits: tuple[float, float],
) -> np.ndarray:
    """Stored values (K, rows, columns) of frames ``k0 .. k0 + K`` of slice ``s``."""
    nx, ny, _, nt = frames.shape
    k1 = min(nt, k0 + _CHUNK)
    gathered = np.empty((k1 - k0, ny, nx), dtype=frames.dtype)
    for x0 in range(0, nx, _BLOCK):  # contiguous copy of a block first, then transpose in cache
        block = np.ascontiguousarray(frames[x0 : x0 + _BLOCK, :, s, k0:k1])
        gathered[:, :, x0 : x0 + _BLOCK] = block.transpose(2, 1, 0)
    hu = np.clip(gathered, *limits, dtype=np.float64)
    hu -= o.rescale_intercept
    hu /= o.rescale_slope
    return np.rint(hu, out=hu).astype(dtype)


def _check_out_dir(out_dir: Path, *, overwrite: bool) -> bool:
    """Refuse an existing non-empty ``out_dir`` unless ``overwrite``; whether to replace it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(out_dir, "exists and is not empty; pass overwrite=True to replace it")
    return out_dir.exists()


def _set_pixels(ds: Dataset, stored: np.ndarray, compression: str | None) -> None:
    """Put ``stored`` (rows, columns) into ``ds``, encoded as ``compression`` asks."""
    if compression is None:
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds["PixelData"].VR = "OW"
    elif compression == "jpeg-lossless":
        ds.PixelData = encapsulate([encode_jpeg_lossless(stored)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    else:
        ds.compress(
            COMPRESSIONS[compression],
            np.ascontiguousarray(stored),
            encoding_plugin=encoding_plugin(compression),
            generate_instance_uid=False,
        )


def _check_series(frames: np.ndarray, o: SeriesOptions) -> None:
    """Refuse what cannot be written, before anything is."""
    check_encoder(o.compression)
    n_bad = int(np.count_nonzero(~np.isfinite(frames)))
    if n_bad:
        raise InputError("frames", f"expected finite values, found {n_bad} NaN or infinite")
    nx, ny, nz, nt = frames.shape
    if o.compression == "jpeg2000" and min(nx, ny) < 32:
        # pylibjpeg-openjpeg always encodes 6 wavelet resolutions: 2**5 pixels at least
        raise InputError(
            "compression", f"'jpeg2000' needs images of at least 32 x 32 pixels, got {nx} x {ny}"
        )
    names = {o.file_pattern.format(instance=k * nz + s + 1, slice=s + 1, frame=k + 1)
             for k in range(nt) for s in range(nz)}  # fmt: skip
    if len(names) != nz * nt:
        raise InputError(
            "file_pattern", f"{o.file_pattern!r} gives {len(names)} names for {nz * nt} files"
        )


def _write_series(
    frames: np.ndarray,
    geo: SliceGeometry,
    times: np.ndarray | None,
    out_dir: Path,
    o: SeriesOptions,
    *,
    study: Study | None = None,
    sources: tuple[tuple[ImageRef, ...], ...] | None = None,
    overwrite: bool,
) -> Path:
    """Write ``frames`` (x, y, z, t) as one file per slice and frame; see `write_dicom_study`.

    ``study`` gives the identity (`derived.identity_of`); ``sources[s][k]``, when given, is
    the source image of slice ``s`` and frame ``k``.
    """
    _check_series(frames, o)
    nx, ny, nz, nt = frames.shape
    dtype, lo, hi = _stored_values(
        frames, slope=o.rescale_slope, intercept=o.rescale_intercept, signed=o.signed
    )
    identity = identity_of(
        study,
        anonymize=o.anonymize,
        new=lambda part: new_uid(o.uid_seed, part, prefix=o.uid_prefix),
        patient_id=o.patient_id,
        patient_name=o.patient_name,
        study_uid=o.study_uid,
        frame_of_reference_uid=o.frame_of_reference_uid,
    )
    series_uid = o.series_uid or new_uid(o.uid_seed, "series", o.series_number, prefix=o.uid_prefix)
    base = base_dataset(frames.shape, geo, series_uid, o, identity)
    if sources is not None:
        base.DerivationDescription = f"{o.series_description} (ctpmaps)"[:1024]

    def write_one(tmp: Path, k: int, s: int, stored: np.ndarray) -> None:
        instance = k * nz + s + 1
        ds = new_instance(base, new_uid(o.uid_seed, series_uid, instance, prefix=o.uid_prefix))
        place_slice(ds, geo, s, instance)
        if times is not None:
            when = o.start + _dt.timedelta(seconds=float(times[k]))
            ds.AcquisitionNumber = k + 1
            ds.TemporalPositionIndex = k + 1
            ds.AcquisitionDate = ds.ContentDate = when.strftime("%Y%m%d")
            ds.AcquisitionTime = ds.ContentTime = when.strftime("%H%M%S.%f")
            ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S.%f")
        if sources is not None:
            ds.SourceImageSequence = [source_image_item(sources[s][k], identity)]
        _set_pixels(ds, stored, o.compression)
        name = o.file_pattern.format(instance=instance, slice=s + 1, frame=k + 1)
        ds.save_as(tmp / name, enforce_file_format=True)

    workers = o.workers or min(4, os.cpu_count() or 1)
    with (
        atomic_dir(out_dir, overwrite=_check_out_dir(out_dir, overwrite=overwrite)) as tmp,
        ThreadPoolExecutor(workers) as pool,
    ):
        for s in range(nz):
            for k0 in range(0, nt, _CHUNK):
                stored = _stored_chunk(frames, s, k0, o, dtype, (lo, hi))
                futures = [
                    pool.submit(write_one, tmp, k0 + j, s, stored[j]) for j in range(len(stored))
                ]
                for future in futures:
                    future.result()
    log.info("wrote %d DICOM files (%s) to %s", nz * nt, o.compression or "uncompressed", out_dir)
    return out_dir


def write_dicom_study(
    study: Study,
    out_dir: str | Path,
    *,
    compression: str | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_description: str = "CT perfusion",
    series_description: str | None = None,
    series_number: int = 1,
    kvp: float | None = 80.0,
    exposure_mas: float | None = 150.0,
    manufacturer: str = "ctpmaps",
    slice_thickness: float | None = None,
    signed: bool = True,
    rescale_intercept: float = -1024.0,
    rescale_slope: float = 1.0,
    start: _dt.datetime | None = None,
    uid_seed: str | None = None,
    uid_prefix: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    file_pattern: str = "IM{instance:05d}.dcm",
    anonymize: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
) -> Path:
    """Write a study as a scanner-like CT DICOM series, one file per slice and frame.

    A study read from DICOM (``study.source_images``) is written as a *derived* series of
    the source's study: its patient and study attributes, *StudyInstanceUID* and
    *FrameOfReferenceUID*, *ImageType* ``DERIVED\\SECONDARY\\AXIAL``, new series and
    instance UIDs, and, when the slices and frames are the source's, a *Source Image
    Sequence* in each file citing the source image of that slice and frame. Any other
    study is written as an original series of a new study.

    Parameters
    ----------
    study : Study
        Frames (x, y, z, t) in HU, RAS+ affine (converted to LPS here), times in s.
    out_dir : str or Path
        Folder to create. Files go to a temporary sibling folder renamed into place at the
        end, so a failure leaves nothing behind.
    compression : {None, 'jpeg-lossless', 'jpeg-ls', 'jpeg2000', 'rle'}
        Transfer syntax: explicit VR little endian, JPEG Lossless SV1 (needs imagecodecs),
        JPEG-LS lossless (pyjpegls), JPEG 2000 lossless (pylibjpeg-openjpeg) or RLE.
    patient_id, patient_name, study_description, series_description : str or None
        Identification written to every file. ``patient_id`` and ``patient_name`` default
        to the source's, else the study's metadata, else ``"CTPMAPS-0001"`` (the name to
        the id); ``series_description`` to the study's metadata, else ``"CT perfusion"``.
    series_number : int
        *SeriesNumber*.
    kvp : float or None
        Tube voltage in kV (*KVP*); None leaves it out.
    exposure_mas : float or None
        Tube current-time product in mAs (*Exposure*); None leaves it out.
    manufacturer : str
        *Manufacturer*.
    slice_thickness : float or None
        Nominal slice thickness in mm; default the spacing between slices.
    signed : bool
        Store int16 (True) or uint16 (False) values.
    rescale_intercept, rescale_slope : float
        HU = stored * slope + intercept; HU are rounded to the stored grid and values outside
        the storable range are clipped (with a logged warning).
    start : datetime or None
        Date and time of the first frame: default the source's first image when it is
        dated (and ``anonymize`` is off), else 2024-01-01 09:00:00.
    uid_seed, uid_prefix : str or None
        With a seed every generated UID is derived deterministically from it; the prefix
        (default pydicom's) roots generated UIDs.
    study_uid, series_uid, frame_of_reference_uid : str or None
        Use these UIDs instead of the source's or generated ones.
    file_pattern : str
        File name; ``{instance}``, ``{slice}`` and ``{frame}`` (all from 1) are filled in.
        Instance numbers run over slices within a frame, frame after frame.
    anonymize : bool
        Write no patient identifiers: the patient and study attributes, source UIDs and
        dates are replaced as `ctpmaps.io.dicom.privacy` describes (explicit
        ``patient_id``/``patient_name`` are ignored).
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    workers : int or None
        Threads writing files (default up to 4).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InputError
        Unknown compression or one whose encoder is missing, non-finite frames, a singular
        affine, or an existing non-empty ``out_dir`` without ``overwrite``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> s = Study(np.zeros((8, 8, 2, 3), np.float32), np.eye(4), np.array([0.0, 1.0, 2.0]))
    >>> out = write_dicom_study(s, pathlib.Path(tempfile.mkdtemp()) / "ctp")
    >>> len(list(out.iterdir()))
    6
    """
    source = study.source_images
    geo = slice_geometry(study.affine, study.shape[2])
    sources = None
    if source is not None and not source_mismatch(study, geo):
        if all(len(row) == study.n_frames for row in source.images):
            sources = source.images
    description = series_description or (
        "CT perfusion" if anonymize else study.metadata.get("series_description")
    )
    opts = SeriesOptions(
        compression=compression,
        patient_id=patient_id,
        patient_name=patient_name,
        study_description=study_description,
        series_description=str(description or "CT perfusion"),
        series_number=series_number,
        manufacturer=manufacturer,
        kvp=kvp,
        exposure_mas=exposure_mas,
        slice_thickness=slice_thickness,
        signed=signed,
        rescale_slope=rescale_slope,
        rescale_intercept=rescale_intercept,
        image_type=("DERIVED", "SECONDARY", "AXIAL") if source is not None else ORIGINAL,
        file_pattern=file_pattern,
        start=start or (None if anonymize else source_start(source)) or DEFAULT_START,
        uid_seed=uid_seed,
        uid_prefix=uid_prefix,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        anonymize=anonymize,
        workers=workers,
    )
    return _write_series(
        study.frames,
        geo,
        study.times,
        Path(out_dir),
        opts,
        study=study,
        sources=sources,
        overwrite=overwrite,
    )


def write_dicom_volume(
    volume: np.ndarray,
    affine: np.ndarray,
    out_dir: str | Path,
    *,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    signed: bool = False,
    rescale_type: str = "US",
    window: tuple[float, float] = (40.0, 400.0),
    series_description: str = "derived map",
    series_number: int = 1,
    file_pattern: str = "IM{instance:05d}.dcm",
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_description: str = "CT perfusion",
    manufacturer: str = "ctpmaps",
    start: _dt.datetime | None = None,
    uid_seed: str | None = None,
    uid_prefix: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    compression: str | None = None,
    anonymize: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
) -> Path:
    """Write one 3D volume (e.g. a perfusion map) as a derived CT series, one file per slice.

    Parameters
    ----------
    volume : ndarray, shape (x, y, z)
        Values in physical units; stored as ``round((v - intercept) / slope)``.
    affine : ndarray, shape (4, 4)
        Voxel -> RAS+ world (mm).
    out_dir : str or Path
        Folder to create (atomically, as in `write_dicom_study`).
    rescale_slope, rescale_intercept : float
        Stored-to-physical mapping; values outside the storable range are clipped (warned).
    signed : bool
        int16 (True) or uint16 (False) storage.
    rescale_type : str
        *RescaleType* (units of the rescaled values, e.g. ``"US"`` unspecified).
    window : (float, float)
        Display *WindowCenter* and *WindowWidth* in physical units.
    series_description, series_number, file_pattern : str, int, str
        As in `write_dicom_study` (``{slice}`` and ``{instance}`` coincide here).
    patient_id, patient_name, study_description, manufacturer, start, uid_seed, uid_prefix, \
study_uid, series_uid, frame_of_reference_uid, compression, anonymize, overwrite, workers
        As in `write_dicom_study`.

    Returns
    -------
    Path
        ``out_dir``.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError("volume", f"expected shape (x, y, z), got {volume.shape}")
    opts = SeriesOptions(
        compression=compression,
        patient_id=patient_id,
        patient_name=patient_name,
        study_description=study_description,
        series_description=series_description,
        series_number=series_number,
        manufacturer=manufacturer,
        kvp=None,
        exposure_mas=None,
        signed=signed,
        rescale_slope=rescale_slope,
        rescale_intercept=rescale_intercept,
        rescale_type=rescale_type,
        window=window,
        image_type=("DERIVED", "SECONDARY", "AXIAL"),
        file_pattern=file_pattern,
        start=start or DEFAULT_START,
        uid_seed=uid_seed,
        uid_prefix=uid_prefix,
        study_uid=study_uid,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        anonymize=anonymize,
        workers=workers,
    )
    geo = slice_geometry(affine, volume.shape[2])
    return _write_series(volume[..., None], geo, None, Path(out_dir), opts, overwrite=overwrite)
