"""What a run's results carry about their own quality: caveats, and when the maps cannot
support a treatment decision.

Each caveat is a dict ``{"code", "severity", "message"}``; ``severity`` is ``"note"``
(worth knowing), ``"warn"`` (the maps are usable with care) or ``"withhold"`` (the maps
cannot support a decision: the decision numbers are withheld on screen, marked in
``volumes.json``, ``run.json`` and the report). The checks are physical sanity checks of
the input functions and the fits, not tuned to any data set:

- an automatic AIF or VOF search that had to drop one of its rules (no candidate met it);
- the AIF's partial-volume scale (VOF area over the AIF's): arterial voxels are
  partly filled with blood, so the scale is above 1, and the automatic AIF takes the most
  enhancing arteries, which at 0.5-2 mm pixels are mostly blood: a scale beyond
  `AIF_SCALE_PLAUSIBLE` means an AIF or VOF taken in the wrong place (or a sinus outside
  the slab), beyond `AIF_SCALE_POSSIBLE` the flows are off by that factor;
- the share of brain voxels whose fit ended on a bound of the model, or whose MTT is
  shorter than one frame interval (a box narrower than the sampling: noise fitted, not
  perfusion) — `FIT_SHARE_WARN` and `FIT_SHARE_WITHHOLD`;
- the contrast-to-noise ratio of the frames (the mean brain curve's peak enhancement over
  the noise SD of one frame), below `CNR_WARN` when the frames were not filtered (or below
  `CNR_LOW` even after filtering): fits of single voxels then follow the noise;
- a network validated only on phantoms (`ctpmaps.nn` weights' metadata).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AIF_SCALE_PLAUSIBLE",
    "AIF_SCALE_POSSIBLE",
    "FIT_SHARE_WARN",
    "FIT_SHARE_WITHHOLD",
    "CNR_WARN",
    "CNR_LOW",
    "assess",
    "caveat",
]

#: AIF partial-volume scales expected of arteries in a CT perfusion slab.
AIF_SCALE_PLAUSIBLE = (0.8, 4.0)
#: Outside this the maps cannot support a decision.
AIF_SCALE_POSSIBLE = (0.5, 10.0)
#: Shares of brain voxels with untrustworthy fits: a caveat, then no decision.
FIT_SHARE_WARN = 0.05
FIT_SHARE_WITHHOLD = 0.20
#: Contrast-to-noise ratios (peak tissue enhancement / noise SD of a frame) below which
#: voxel-wise fits follow the noise: for unfiltered frames, and after any filtering.
CNR_WARN = 10.0
CNR_LOW = 5.0


def caveat(code: str, severity: str, message: str) -> dict[str, str]:
    """One finding, JSON-ready."""
    return {"code": code, "severity": severity, "message": message}


def _aif(params: dict[str, Any]) -> list[dict[str, str]]:
    notes = [
        caveat("input_function_search", "warn", f"{n} (see input_functions.png)")
        for n in params.get("input_function_notes", [])
    ]
    scale = params.get("aif_scale")
    if scale is None or params.get("vof_source") is None:
        return notes
    lo, hi = AIF_SCALE_PLAUSIBLE
    if lo <= scale <= hi:
        return notes
    severe = not AIF_SCALE_POSSIBLE[0] <= scale <= AIF_SCALE_POSSIBLE[1]
    return [
        caveat(
            "aif_scale",
            "withhold" if severe else "warn",
            f"the AIF's partial-volume scale is {scale:.2f}, outside the plausible "
            f"{lo:g}-{hi:g}: the AIF or the VOF was probably taken in the wrong place "
            "(see input_functions.png); CBF and CBV scale with it. Give the arteries with "
            "--aif-mask or the curve with --aif-csv.",
        )
    ] + notes


def _fits(quality: dict[str, float]) -> list[dict[str, str]]:
    out = []
    dt = quality.get("frame_interval_s", 0.0)
    for key, what in (
        ("fit_at_bound_fraction", "fits ended on a bound of the model" + _by_bound(quality)),
        ("mtt_below_frame_interval_fraction", f"fits have an MTT below one frame ({dt:g} s)"),
    ):
        share = quality.get(key)
        if share is None or share <= FIT_SHARE_WARN:
            continue
        severity = "withhold" if share > FIT_SHARE_WITHHOLD else "warn"
        out.append(
            caveat(
                key.removesuffix("_fraction"),
                severity,
                f"{100 * share:.0f} % of brain voxels' {what}: noise fitted rather than "
                "perfusion there; CBF and MTT are unreliable.",
            )
        )
    return out


#: What each bound of the box NLR means, for the caveat.
BOUND_NAMES = {
    "mtt_min": "the shortest MTT",
    "mtt_max": "the longest MTT",
    "delay_max": "the latest arrival",
}


def _by_bound(quality: dict[str, float]) -> str:
    """`` (the shortest MTT 4 %, ...)``: the bounds hit by more than 0.5 % of the brain."""
    parts = [
        f"{what} {100 * quality[f'fit_at_bound_{name}_fraction']:.0f} %"
        for name, what in BOUND_NAMES.items()
        if quality.get(f"fit_at_bound_{name}_fraction", 0.0) > 0.005
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _noise(quality: dict[str, float], filtered: bool) -> list[dict[str, str]]:
    cnr, noise = quality.get("contrast_to_noise"), quality.get("noise_hu")
    if cnr is None or cnr >= (CNR_LOW if filtered else CNR_WARN):
        return []
    advice = (
        "Filter them (ctpmaps run, or maps without --no-filter)."
        if not filtered
        else "A stronger filter (--sigma-spatial) or a higher dose would help."
    )
    return [
        caveat(
            "noisy_frames",
            "warn",
            f"the frames{'' if filtered else ' were not filtered and'} have a noise of "
            f"{noise:.1f} HU against a tissue enhancement of "
            f"{quality.get('tissue_peak_hu', float('nan')):.0f} HU (contrast-to-noise "
            f"{cnr:.1f}): CBF and MTT of single voxels follow the noise. {advice}",
        )
    ]


def _network(params: dict[str, Any]) -> list[dict[str, str]]:
    sentence = params.get("validation_caveat")
    if not sentence:
        return []
    return [caveat("phantom_only_network", "withhold", f"{sentence}.")]


def assess(maps_params: dict[str, Any], *, filtered: bool, problems: list[str]) -> list[dict]:
    """The caveats of a run from its maps' parameters (`ctpmaps.perfusion.MapsResult`).

    Parameters
    ----------
    maps_params : dict
        ``MapsResult.parameters``: the input functions, ``quality`` numbers, network models.
    filtered : bool
        Whether the frames went through the bilateral filter (here or before).
    problems : list of str
        Non-fatal problems met while reading the study (each becomes a note).

    Returns
    -------
    list of dict
    """
    quality = maps_params.get("quality") or {}
    found = _aif(maps_params) + _fits(quality) + _noise(quality, filtered)
    found += _network(maps_params)
    found += [caveat("reading", "note", p) for p in problems]
    return found
