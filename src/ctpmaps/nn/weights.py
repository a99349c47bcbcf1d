"""Model files: weights as safetensors plus a JSON of metadata, checked on load.

A model ``cbv`` is two files side by side::

    cbv.safetensors   the network's tensors (state dict), float32 or float16
    cbv.json          format, architecture (`UNet` arguments), target and its physical
                      range and unit, frames (T, indices, times), input normalisation,
                      the training slices' pixel size and matrix, the filter of the
                      training frames, target source, training command, metrics, what the
                      model was validated on, SHA-256 of the tensors

Fields added after format version 1 was first written (``pixel_mm``, ``matrix``,
``filter``, ``validated_on``) are optional: older files load, and the readers of those
fields (`ctpmaps.nn.grid.training_pixel_mm`, `ctpmaps.nn.model_info`) infer them and say so.

Loading never unpickles: tensors come from safetensors, everything else from JSON, and the
two are checked against each other (checksum, architecture, every tensor's name and
shape). Any mismatch raises `WeightsError` naming the file.

Training checkpoints (`save_checkpoint`) use the same two-file scheme: the model's and the
optimiser's tensors flattened into one safetensors file, epoch, scheduler and optimiser
hyper-parameters in JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CtpmapsError, WeightsError
from ..io.atomic import atomic_path
from .normalise import HU_WINDOW, INPUT_MEAN, INPUT_STD, TARGET_RANGES, TARGET_UNITS
from .unet import UNet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "model_paths",
    "save_model",
    "load_model",
    "read_metadata",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = "ctpmaps-unet"
FORMAT_VERSION = 1


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights .safetensors, metadata .json)`` for a path to either or to their stem."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_metadata() -> dict[str, Any]:
    """The input normalisation, as stored with every model."""
    return {"hu_window": list(HU_WINDOW), "mean": INPUT_MEAN, "std": INPUT_STD}


def save_model(
    path: str | Path,
    net: UNet,
    *,
    target: str,
    frame_indices: list[int],
    frame_times_s: list[float],
    value_range: tuple[float, float] | None = None,
    pixel_mm: tuple[float, float] | None = None,
    matrix: tuple[int, int] | None = None,
    filter_sigmas: tuple[float, float] | None = None,
    enhancement_scale: float | None = None,
    dtype: torch.dtype = torch.float32,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write a model's weights and metadata (both atomically).

    Parameters
    ----------
    path : str or Path
        Stem, ``.safetensors`` or ``.json`` path (e.g. ``out/cbv``).
    net : UNet
        The trained network (unwrapped from DistributedDataParallel).
    target : str
        Map name (`TARGET_RANGES`).
    frame_indices, frame_times_s : list
        Frames the network was trained on (T = their number) and their times in s.
    value_range : (low, high), optional
        Physical range of the target; ``TARGET_RANGES[target]`` by default.
    pixel_mm : (float, float), optional
        Pixel size ``(x, y)`` in mm of the slices the network was trained on (last stage):
        `ctpmaps.nn.predict_maps` resamples studies onto it.
    matrix : (int, int), optional
        Matrix ``(x, y)`` of those slices.
    filter_sigmas : (float, float), optional
        Guided bilateral filter of the training frames: spatial sigma (mm), range sigma
        (HU); stored as ``filter``.
    enhancement_scale : float, optional
        Input-function area (HU s) the training frames' enhancement was scaled to
        (`ctpmaps.nn.scale`); stored as ``enhancement_scale``, and inference then scales a
        study the same way. None: frames as they are (the seed's inputs).
    dtype : torch.dtype, optional
        Storage type of floating tensors (float16 halves the size; loading restores
        float32).
    extra : dict, optional
        More metadata: ``target_source``, ``training`` (command, settings), ``metrics``...

    Returns
    -------
    (Path, Path)
        The weights and metadata files.
    """
    weights, meta_path = model_paths(path)
    if target not in TARGET_RANGES:
        raise WeightsError(f"{meta_path}: unknown target {target!r}")
    if len(frame_indices) != net.in_channels:
        raise WeightsError(
            f"{meta_path}: {len(frame_indices)} frame indices for a network of "
            f"{net.in_channels} input frames"
        )
    tensors = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
        .contiguous()
        .clone()
        for k, v in net.state_dict().items()
    }
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "target": target})
    low, high = value_range or TARGET_RANGES[target]
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {"name": "UNet", **net.config()},
        "target": target,
        "unit": TARGET_UNITS[target],
        "value_range": [float(low), float(high)],
        "n_frames": net.in_channels,
        "frame_indices": [int(i) for i in frame_indices],
        "frame_times_s": [round(float(t), 4) for t in frame_times_s],
        "input": input_metadata(),
        **_grid_and_filter(pixel_mm, matrix, filter_sigmas),
        **_enhancement(enhancement_scale),
        "weights_file": weights.name,
        "weights_sha256": _sha256(weights),
        "weights_dtype": str(dtype).replace("torch.", ""),
        **(extra or {}),
    }
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return weights, meta_path


def _grid_and_filter(pixel_mm, matrix, filter_sigmas) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pixel_mm is not None:
        out["pixel_mm"] = [round(float(v), 6) for v in pixel_mm]
    if matrix is not None:
        out["matrix"] = [int(v) for v in matrix]
    if filter_sigmas is not None:
        spatial, range_hu = (float(v) for v in filter_sigmas)
        out["filter"] = {
            "method": "guided bilateral",
            "sigma_spatial_mm": spatial,
            "sigma_range_hu": range_hu,
        }
    return out


def _enhancement(reference: float | None) -> dict[str, Any]:
    if reference is None:
        return {}
    return {
        "enhancement_scale": {
            "reference_area_hu_s": float(reference),
            "input_function": "automatic AIF scaled to the VOF's area "
            "(ctpmaps.perfusion.maps.automatic_input_functions), on the filtered frames",
        }
    }


def _check_optional(meta: dict[str, Any], meta_path: Path) -> None:
    """Fields older files lack: checked when present."""

    def pair(key: str, value) -> None:
        ok = isinstance(value, list) and len(value) == 2
        if not ok or not all(isinstance(v, int | float) and v > 0 for v in value):
            raise WeightsError(f"{meta_path}: {key} expected two positive numbers, got {value!r}")

    for key in ("pixel_mm", "matrix"):
        if key in meta:
            pair(key, meta[key])
    if "filter" in meta:
        f = meta["filter"]
        spatial = f.get("sigma_spatial_mm") if isinstance(f, dict) else None
        range_hu = f.get("sigma_range_hu") if isinstance(f, dict) else None
        numbers = all(isinstance(v, int | float) for v in (spatial, range_hu))
        if not (numbers and spatial >= 0 and range_hu > 0):
            raise WeightsError(
                f"{meta_path}: filter expected sigma_spatial_mm >= 0 and sigma_range_hu > 0, "
                f"got {f!r}"
            )
    if "enhancement_scale" in meta:
        e = meta["enhancement_scale"]
        ref = e.get("reference_area_hu_s") if isinstance(e, dict) else None
        if not (isinstance(ref, int | float) and ref > 0):
            raise WeightsError(
                f"{meta_path}: enhancement_scale expected reference_area_hu_s > 0, got {e!r}"
            )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check a model's JSON metadata (without loading tensors).

    Raises
    ------
    WeightsError
        Missing or unreadable file, another format, or missing or invalid fields.
    """
    weights, meta_path = model_paths(path)
    if not meta_path.is_file():
        raise WeightsError(f"{meta_path}: missing: the metadata file beside {weights.name}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{meta_path}: unreadable metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{meta_path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{meta_path}: format version {meta.get('format_version')!r}, this ctpmaps reads "
            f"{FORMAT_VERSION}"
        )
    for key in ("architecture", "target", "value_range", "n_frames", "frame_indices", "input"):
        if key not in meta:
            raise WeightsError(f"{meta_path}: missing field {key!r}")
    if meta["target"] not in TARGET_RANGES:
        raise WeightsError(f"{meta_path}: unknown target {meta['target']!r}")
    if meta["input"] != input_metadata():
        raise WeightsError(
            f"{meta_path}: input normalisation {meta['input']} differs from this version's "
            f"{input_metadata()}"
        )
    arch = meta["architecture"]
    if not isinstance(arch, dict) or arch.get("name") != "UNet":
        raise WeightsError(f"{meta_path}: unknown architecture {arch!r}")
    if (
        arch.get("in_channels") != meta["n_frames"]
        or len(meta["frame_indices"]) != meta["n_frames"]
    ):
        raise WeightsError(
            f"{meta_path}: n_frames {meta['n_frames']}, in_channels {arch.get('in_channels')} "
            f"and {len(meta['frame_indices'])} frame indices disagree"
        )
    _check_optional(meta, meta_path)
    return meta


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[UNet, dict[str, Any]]:
    """Load a model written by `save_model`, checked; in eval mode on ``device``.

    Parameters
    ----------
    path : str or Path
        Stem, ``.safetensors`` or ``.json`` path.
    device : str or torch.device, optional

    Returns
    -------
    (UNet, dict)
        The network (float32) and its metadata.

    Raises
    ------
    WeightsError
        A missing file, a checksum mismatch, an architecture that cannot be built, or
        tensors whose names or shapes differ from the architecture's; the message names the
        file.
    """
    weights, meta_path = model_paths(path)
    meta = read_metadata(path)
    if not weights.is_file():
        raise WeightsError(f"{weights}: missing: the weights described by {meta_path.name}")
    sha = meta.get("weights_sha256")
    if sha is not None and _sha256(weights) != sha:
        raise WeightsError(
            f"{weights}: checksum differs from {meta_path.name}: damaged or replaced"
        )
    arch = {k: v for k, v in meta["architecture"].items() if k != "name"}
    try:
        net = UNet(**arch)
    except (CtpmapsError, TypeError) as exc:
        raise WeightsError(f"{meta_path}: architecture cannot be built: {exc}") from exc
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{weights}: not a readable safetensors file ({exc})") from exc
    _load_state(net, tensors, weights)
    return net.to(device).eval(), meta


def _load_state(net: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source}: tensors do not match the architecture: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for name, ref in expected.items():
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise WeightsError(
                f"{source}: tensor {name} has shape {tuple(tensors[name].shape)}, the "
                f"architecture expects {tuple(ref.shape)}"
            )
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    path: str | Path,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Write a training checkpoint: ``path.safetensors`` (model ``model.*`` and optimiser
    ``optim.<param>.<name>`` tensors) and ``path.json`` (``state`` plus the optimiser's
    hyper-parameters). No pickle; the JSON is written last, so a checkpoint whose JSON
    exists is complete."""
    weights, meta_path = model_paths(path)
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()
    }
    opt = optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for name, value in pstate.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{idx}.{name}"] = t.detach().cpu().contiguous().clone()
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    record = {
        "state": state,
        "param_groups": opt["param_groups"],
        "weights_sha256": _sha256(weights),
    }
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def load_checkpoint(
    path: str | Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore ``net`` and ``optimizer`` from `save_checkpoint` files; returns ``state``.

    Raises
    ------
    WeightsError
        Missing, damaged or mismatched checkpoint files (named).
    """
    weights, meta_path = model_paths(path)
    try:
        record = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{meta_path}: unreadable checkpoint ({exc})") from exc
    if not weights.is_file() or _sha256(weights) != record.get("weights_sha256"):
        raise WeightsError(f"{weights}: missing or does not match {meta_path.name}")
    tensors = load_file(str(weights))
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_state(net, model, weights)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": record["param_groups"]})
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{meta_path}: optimiser state does not match ({exc})") from exc
    return record["state"]
