"""Figures of the report as PNG bytes: maps with colour bars in physical units, lesion
overlays, input functions and head motion.

Slices are shown in the radiological convention (the patient's right on the image's left,
anterior at the top), whatever the array order, from the affine. Matplotlib's object
interface with the Agg canvas is used (no pyplot state, safe in threads).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np

__all__ = [
    "DISPLAY",
    "display_slice",
    "map_range",
    "colour_tile",
    "overlay_tile",
    "colour_bar",
    "crop_box",
    "input_locations_figure",
    "slice_tiles",
    "curves_figure",
    "input_functions_figure",
    "motion_figure",
    "write_png",
]

#: Display settings per map: colour map and range in the map's unit (None: from the data).
DISPLAY: dict[str, dict] = {
    "cbf": {"cmap": "turbo", "range": (0.0, 80.0), "title": "CBF"},
    "cbv": {"cmap": "turbo", "range": (0.0, 6.0), "title": "CBV"},
    "mtt": {"cmap": "turbo", "range": (0.0, 15.0), "title": "MTT"},
    "ttp": {"cmap": "turbo", "range": None, "title": "TTP"},
    "tmax": {"cmap": "turbo", "range": (0.0, 12.0), "title": "Tmax"},
    "delay": {"cmap": "turbo", "range": (0.0, 10.0), "title": "Delay"},
}
_CORE_RGB = (0.86, 0.12, 0.12)
_PENUMBRA_RGB = (0.16, 0.78, 0.24)


def display_slice(volume: np.ndarray, k: int, affine: np.ndarray) -> np.ndarray:
    """Slice ``k`` of ``volume`` (x, y, z[, ...]) as rows anterior -> posterior and columns
    patient right -> left (radiological view)."""
    codes = nib.aff2axcodes(np.asarray(affine, float))
    img = np.asarray(volume)[:, :, k]
    ap_axis = 0 if codes[0] in ("A", "P") else 1
    if ap_axis == 1:  # rows must run along A/P
        img = np.swapaxes(img, 0, 1)
        row_code, col_code = codes[1], codes[0]
    else:
        row_code, col_code = codes[0], codes[1]
    if row_code == "A":  # index grows anteriorly: flip so anterior is on top
        img = img[::-1]
    if col_code == "R":  # index grows to the right: flip so the right is on the left
        img = img[:, ::-1]
    return img


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def _figure(width_in: float, height_in: float, dpi: int = 90):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _range(name: str, values: np.ndarray) -> tuple[float, float]:
    fixed = DISPLAY.get(name, {}).get("range")
    if fixed is not None:
        return fixed
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [2, 98])
    return float(lo), float(max(hi, lo + 1e-3))


def _png_rgb(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def map_range(name: str, values: np.ndarray) -> tuple[float, float]:
    """Display range of a map in its unit: `DISPLAY` or the 2nd-98th percentiles."""
    return _range(name, values)


def colour_tile(values: np.ndarray, *, cmap: str, vmin: float, vmax: float) -> bytes:
    """A 2D map as a colour PNG (NaN black), no axes; PNG bytes."""
    from matplotlib import colormaps

    scaled = (np.asarray(values, np.float32) - vmin) / max(vmax - vmin, 1e-12)
    rgba = colormaps[cmap](np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0), bytes=True)
    rgba[~np.isfinite(values)] = (0, 0, 0, 255)
    return _png_rgb(np.ascontiguousarray(rgba[..., :3]))


def overlay_tile(
    image: np.ndarray,
    *,
    core: np.ndarray | None = None,
    penumbra: np.ndarray | None = None,
    window: tuple[float, float] = (0.0, 100.0),
    alpha: float = 0.55,
) -> bytes:
    """A grey HU image (``window``) with core (red) and penumbra (green) blended in; PNG."""
    grey = np.clip((np.asarray(image, np.float32) - window[0]) / (window[1] - window[0]), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for mask, colour in ((penumbra, _PENUMBRA_RGB), (core, _CORE_RGB)):
        if mask is not None:
            m = np.asarray(mask, bool)
            rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(colour)
    return _png_rgb((rgb * 255 + 0.5).astype(np.uint8))


def colour_bar(
    title: str,
    unit: str,
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    marks: Sequence[tuple[float, str]] = (),
) -> bytes:
    """A horizontal colour bar with its range and unit; PNG bytes.

    ``marks`` are ``(value, label)`` pairs drawn as black ticks with their label above the
    bar: the thresholds applied to the map (e.g. Tmax > 6 s).
    """
    import matplotlib as mpl

    fig = _figure(2.6, 0.95, dpi=100)
    ax = fig.add_axes((0.05, 0.42, 0.9, 0.2))
    norm = mpl.colors.Normalize(vmin=vmin, vmax=vmax)
    bar = fig.colorbar(
        mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=ax, orientation="horizontal"
    )
    bar.ax.tick_params(labelsize=7, length=2, pad=1)
    bar.set_label(f"{title} [{unit}]" if unit else title, fontsize=8, labelpad=1)
    for value, label in marks:
        if vmin <= value <= vmax:
            ax.axvline(value, color="black", lw=2)
            ax.text(value, 1.15, label, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7, fontweight="bold")  # fmt: skip
    return _png(fig)


def crop_box(mask: np.ndarray, spacing: Sequence[float], *, margin_mm: float = 6.0):
    """In-plane bounding box of ``mask`` (x, y, z) over all slices, with a margin: a tuple of
    two slices (x, y) that crops every slice the same way (the head, not the air)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return (slice(None), slice(None))
    box = []
    for axis, other in ((0, (1, 2)), (1, (0, 2))):
        idx = np.flatnonzero(mask.any(axis=other))
        pad = int(np.ceil(margin_mm / float(spacing[axis])))
        box.append(slice(max(0, idx[0] - pad), min(mask.shape[axis], idx[-1] + 1 + pad)))
    return tuple(box)


def slice_tiles(
    k: int,
    *,
    maps: Mapping[str, np.ndarray],
    mean_frame: np.ndarray,
    affine: np.ndarray,
    ranges: Mapping[str, tuple[float, float]],
    core: np.ndarray | None = None,
    penumbra: np.ndarray | None = None,
    crop: tuple[slice, slice] = (slice(None), slice(None)),
    max_pixels: int = 360,
) -> dict[str, bytes]:
    """PNG tiles of slice ``k``: ``"overlay"`` (mean frame with core and penumbra) and one
    per map, in the radiological view.

    Parameters
    ----------
    k : int
        Slice index (z).
    maps : mapping of str to ndarray (x, y, z)
        Maps in physical units; NaN (outside the brain) shows black.
    mean_frame : ndarray (x, y, z)
        Mean of the frames in HU, shown with a 0-100 HU window.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm, for the orientation.
    ranges : mapping of str to (float, float)
        Display range of each map in its unit (the same for every slice, as the colour bar).
    core, penumbra : ndarray (x, y, z) bool, optional
        Lesion masks to overlay.
    crop : (slice, slice)
        In-plane region shown (`crop_box` of the head), the same for every slice.
    max_pixels : int
        Larger crops are down-sampled by an integer factor.
    """
    side = max(len(range(*crop[i].indices(mean_frame.shape[i]))) for i in (0, 1))
    step = max(1, int(np.ceil(side / max_pixels)))
    show = lambda v: display_slice(v[crop], k, affine)[::step, ::step]  # noqa: E731
    tiles = {
        "overlay": overlay_tile(
            show(mean_frame),
            core=None if core is None else show(core),
            penumbra=None if penumbra is None else show(penumbra),
        )
    }
    for name, values in maps.items():
        lo, hi = ranges[name]
        cmap = DISPLAY.get(name, {}).get("cmap", "viridis")
        tiles[name] = colour_tile(show(values), cmap=cmap, vmin=lo, vmax=hi)
    return tiles


def curves_figure(
    times: np.ndarray, curves: Mapping[str, np.ndarray], *, ylabel: str = "enhancement (HU)"
) -> bytes:
    """Time curves (e.g. AIF and VOF) against time in s; PNG bytes."""
    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    colours = {"AIF": "tab:red", "VOF": "tab:blue"}
    for name, curve in curves.items():
        ax.plot(times, curve, marker=".", ms=3, lw=1.2, label=name, color=colours.get(name))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def input_functions_figure(aif, vof=None) -> bytes:
    """The AIF (as used: after partial-volume scaling) and the VOF against time; PNG bytes.

    ``aif`` and ``vof`` are `ctpmaps.perfusion.aif.InputFunction`; the legend names where
    each came from, how many voxels were averaged and the AIF's scale.
    """
    fig = _figure(7.0, 3.6)
    ax = fig.subplots()
    label = f"AIF ({aif.source}, {len(aif.voxels)} voxels"
    label += f", x{aif.scale:.2f} partial-volume scale)" if aif.scale != 1 else ")"
    ax.plot(aif.times, aif.curve, "-", marker=".", ms=3, color="tab:red", label=label)
    if vof is not None:
        vlabel = f"VOF ({vof.source}, {len(vof.voxels)} voxels)"
        ax.plot(vof.times, vof.curve, "-", marker=".", ms=3, color="tab:blue", label=vlabel)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("enhancement (HU)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def input_locations_figure(
    image: np.ndarray,
    affine: np.ndarray,
    *,
    aif_voxels: np.ndarray,
    vof_voxels: np.ndarray | None = None,
    crop: tuple[slice, slice] = (slice(None), slice(None)),
    max_slices: int = 3,
) -> bytes:
    """Where the AIF (red) and VOF (blue) were taken: the slices holding most of their
    voxels, on ``image`` (x, y, z; HU, e.g. the maximum enhancement); PNG bytes."""
    vof_voxels = np.zeros((0, 3), int) if vof_voxels is None else np.asarray(vof_voxels)
    aif_voxels = np.asarray(aif_voxels)
    counts = np.bincount(
        np.concatenate([aif_voxels[:, 2], vof_voxels[:, 2]]).astype(int), minlength=image.shape[2]
    )
    slices = sorted(np.argsort(counts)[::-1][: max(1, min(max_slices, int((counts > 0).sum())))])
    fig = _figure(3.0 * len(slices), 3.3)
    axes = np.atleast_1d(fig.subplots(1, len(slices)))
    x0 = crop[0].indices(image.shape[0])[0]
    y0 = crop[1].indices(image.shape[1])[0]
    for ax, k in zip(axes, slices, strict=True):
        img = display_slice(image[crop], k, affine)
        lo, hi = (
            np.percentile(img[np.isfinite(img)], [1, 99.5]) if np.isfinite(img).any() else (0, 1)
        )
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for vox, colour, label in ((aif_voxels, "red", "AIF"), (vof_voxels, "deepskyblue", "VOF")):
            shown = image[crop].shape[:2]
            sel = vox[vox[:, 2] == k][:, :2] - (x0, y0)
            sel = sel[np.all((sel >= 0) & (sel < shown), axis=1)]  # outside the crop: unmarked
            if sel.size:
                marks = np.zeros(shown + (1,), bool)
                marks[sel[:, 0], sel[:, 1], 0] = True
                r, c = np.nonzero(display_slice(marks, 0, affine))
                ax.scatter(c, r, s=10, facecolors="none", edgecolors=colour, lw=1, label=label)
        ax.set_title(f"slice {k + 1}", fontsize=8)
        ax.set_axis_off()
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    if handles:
        labels = [lbl for ax in axes for lbl in ax.get_legend_handles_labels()[1]]
        unique = dict(zip(labels, handles, strict=True))
        fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _png(fig)


def write_png(path, png: bytes):
    """Write PNG bytes to ``path`` atomically; returns the path."""
    from pathlib import Path

    from ..io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return path


def motion_figure(result) -> bytes:
    """Rigid head motion of a `ctpmaps.preprocess.MotionResult` over time: translations
    (mm) and rotations (degrees), flag thresholds dashed, flagged frames marked; PNG bytes."""
    n_t = result.translations_mm.shape[0]
    times = result.times if result.times is not None else np.full(n_t, np.nan)
    known = bool(np.all(np.isfinite(times)))
    x = times if known else np.arange(times.size)
    fig = _figure(8, 5.5, dpi=100)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(2, 1, sharex=True)
    panels = (
        (axes[0], result.translations_mm, result.flag_mm, "translation (mm)", ("x", "y", "z")),
        (axes[1], result.rotations_deg, result.flag_deg, "rotation (deg)", ("x", "y", "z")),
    )
    for ax, values, limit, label, names in panels:
        for j, name in enumerate(names):
            ax.plot(x, values[:, j], marker=".", lw=1, label=name)
        for sign in (-1, 1):
            ax.axhline(sign * limit, color="0.4", ls="--", lw=0.8)
        if result.flagged.any():
            ax.plot(
                x[result.flagged], values[result.flagged].max(axis=1), "rv", ms=6, label="flagged"
            )
        ax.set_ylabel(label)
        ax.legend(loc="upper left", fontsize=8, ncol=4)
        ax.grid(alpha=0.3)
    axes[0].set_title(
        f"Rigid motion against frame {result.reference}; dashed: flag threshold "
        f"({int(result.registered.sum())} frames registered, {int(result.flagged.sum())} "
        "flagged)",
        fontsize=9,
    )
    axes[1].set_xlabel("time (s)" if known else "frame")
    return _png(fig)
