"""The HTML page of a cohort evaluation: every table and figure in one self-contained file.

It takes the evaluation as plain data, ``{"settings", "captions", "tables"}`` (what
``ctpmaps.evaluation.CohortEvaluation.as_dict()`` gives, or the JSON written beside it), so
that a page can be rebuilt from a saved JSON and this module does not depend on the
evaluation code. Every number on the page and in the figures comes from those tables.

Figures (PNG, matplotlib's Agg canvas, embedded as base64)
    - learning curves of the training runs given (the seed's Figure 4), beside their
      cross-validation and test tables (Table 1);
    - map errors: MSE inside the brain and over the slices per source beside the constant
      predictor (the seed's Table 1 as bars);
    - Dice per pair of sources, box and points per lesion (the seed's Table 2);
    - lesion volumes per patient and source (the seed's Figures 5 and 6);
    - Bland-Altman plots per lesion and pair with the bias and the 95 % limits of agreement
      (the seed's Figure 7), and volume scatter plots with the identity line and Pearson r.

Tables carry ids ``table-<name>`` and figures ``figure-<name>[-<lesion>]``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path
from ..io.tables import jsonable, table_columns
from .figures import _figure, _png
from .html import _CSS, _SCRIPT, _img

__all__ = [
    "render_evaluation_html",
    "write_evaluation_report",
    "map_error_figure",
    "dice_figure",
    "volumes_figure",
    "bland_altman_figure",
    "volume_scatter_figure",
    "learning_curves_figure",
]

Rows = Sequence[Mapping[str, Any]]

_EXTRA_CSS = """
table.data td{text-align:right;font-variant-numeric:tabular-nums}
table.data td.t{text-align:left} details{margin:6px 0} .caption{font-size:13px;color:#444}
"""
#: Unit shown in a column header, from the column name's suffix.
_SUFFIX_UNITS = {"_ml": "mL", "_db": "dB", "_pct": "%"}
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _select(rows: Rows, **match: Any) -> list[Mapping[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _pairs(rows: Rows) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["source_a"], r["source_b"]) for r in rows))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _grid(n: int, *, cols: int = 3, size: tuple[float, float] = (3.6, 3.0)):
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = _figure(size[0] * cols, size[1] * rows)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def _finish(fig) -> bytes | None:
    if fig is None:
        return None
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------- figures
def map_error_figure(maps: Rows) -> bytes | None:
    """Bars of MSE (normalised scale) per map and source, inside the brain and over the
    slices, beside the constant predictors (each patient's mean; inside the brain also the
    cohort's one value); None without rows."""
    names = list(dict.fromkeys(r["map"] for r in maps))
    if not names:
        return None
    fig, axes = _grid(len(names), size=(4.2, 3.2))
    bars = (
        ("mse_brain_mean", "brain", "#1f77b4"),
        ("constant_mse_brain", "constant, brain", "#aec7e8"),
        ("cohort_constant_mse_brain", "cohort constant, brain", "#c7c7c7"),
        ("mse_slice_mean", "slice", "#d62728"),
        ("constant_mse_slice", "constant, slice", "#ff9896"),
    )
    for ax, name in zip(axes, names, strict=True):
        rows = _select(maps, map=name)
        x = np.arange(len(rows))
        for j, (key, label, colour) in enumerate(bars):
            values = [r.get(key) if _finite(r.get(key)) else 0.0 for r in rows]
            ax.bar(x + (j - 2) * 0.16, values, 0.16, label=label, color=colour)
        ax.set_xticks(x, [str(r["source"]) for r in rows], fontsize=8)
        ax.set_title(name.upper(), fontsize=10)
        ax.set_ylabel("MSE (normalised [0, 1])", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=7)
    return _finish(fig)


def dice_figure(dice_per_patient: Rows, lesions: Sequence[str]) -> bytes | None:
    """Box and points of the Dice per pair of sources, one panel per lesion (kept patients,
    defined Dice only); None when there is none."""
    kept = [r for r in dice_per_patient if not r.get("excluded") and _finite(r.get("dice"))]
    panels = [lesion for lesion in lesions if _select(kept, lesion=lesion)]
    if not panels:
        return None
    fig, axes = _grid(len(panels), cols=1, size=(9.0, 3.0))
    rng = np.random.default_rng(0)  # jitter of the points only
    for ax, lesion in zip(axes, panels, strict=True):
        rows = _select(kept, lesion=lesion)
        pairs = _pairs(rows)
        data = [[r["dice"] for r in _select(rows, source_a=a, source_b=b)] for a, b in pairs]
        ax.boxplot(data, widths=0.5, showfliers=False)
        for i, values in enumerate(data, start=1):
            jitter = rng.uniform(-0.12, 0.12, len(values))
            ax.plot(i + jitter, values, "o", ms=3, alpha=0.6, color=_COLOURS[0])
        ax.set_xticks(range(1, len(pairs) + 1), [f"{a}\nvs {b}" for a, b in pairs], fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("Dice", fontsize=8)
        ax.set_title(lesion, fontsize=10)
    return _finish(fig)


def volumes_figure(
    volumes: Rows, lesion: str, sources: Sequence[str], *, excluded: Sequence[str] = ()
) -> bytes | None:
    """Grouped bars of one lesion's volume (mL) per patient and source; patients in
    ``excluded`` (out of the volume statistics) are labelled "(out)"."""
    rows = _select(volumes, lesion=lesion)
    if not rows:
        return None
    patients = list(dict.fromkeys(r["patient"] for r in rows))
    names = [s for s in sources if _select(rows, source=s)]
    width = 0.8 / len(names)
    fig = _figure(max(6.0, 0.45 * len(patients) * max(1, len(names)) / 2), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(patients))
    for j, s in enumerate(names):
        by_patient = {r["patient"]: r["volume_ml"] for r in _select(rows, source=s)}
        values = [by_patient.get(p, 0.0) for p in patients]
        offset = (j - (len(names) - 1) / 2) * width
        ax.bar(x + offset, values, width, label=s, color=_COLOURS[j % len(_COLOURS)])
    labels = [f"{p} (out)" if p in excluded else str(p) for p in patients]
    ax.set_xticks(x, labels, rotation=60, fontsize=7)
    ax.set_ylabel(f"{lesion} volume (mL)", fontsize=8)
    ax.legend(fontsize=7)
    return _finish(fig)


def _pair_panels(volume_pairs: Rows, agreement: Rows, lesion: str) -> tuple[Any, list]:
    """A figure with one panel per agreement row of ``lesion`` and, per panel, the row and
    its paired volumes ``(ax, row, volumes_a_ml, volumes_b_ml)``; (None, []) without rows."""
    rows = [r for r in _select(agreement, lesion=lesion) if r.get("n")]
    if not rows:
        return None, []
    fig, axes = _grid(len(rows))
    panels = []
    for ax, row in zip(axes, rows, strict=True):
        match = {"lesion": lesion, "source_a": row["source_a"], "source_b": row["source_b"]}
        points = _select(volume_pairs, **match)
        va = np.array([r["volume_a_ml"] for r in points], dtype=float)
        vb = np.array([r["volume_b_ml"] for r in points], dtype=float)
        panels.append((ax, row, va, vb))
    return fig, panels


def bland_altman_figure(volume_pairs: Rows, agreement: Rows, lesion: str) -> bytes | None:
    """Bland-Altman plots of one lesion, one panel per pair: difference ``a - b`` against the
    mean, with the bias and the 95 % limits of agreement of the agreement table."""
    fig, panels = _pair_panels(volume_pairs, agreement, lesion)
    for ax, row, va, vb in panels:
        a, b = row["source_a"], row["source_b"]
        ax.plot((va + vb) / 2, va - vb, "o", ms=4, alpha=0.7)
        for key, style, label, x in (
            ("bias_ml", "-", "bias", 0.0),
            ("loa_low_ml", "--", "-1.96 SD", 1.0),
            ("loa_high_ml", "--", "+1.96 SD", 1.0),
        ):
            if _finite(row.get(key)):
                ax.axhline(row[key], ls=style, color="#d62728", lw=1)
                text, ha = f"{label} {row[key]:.2f}", "left" if x == 0.0 else "right"
                where = ("axes fraction", "data")
                ax.annotate(text, (x, row[key]), xycoords=where, ha=ha, va="bottom", fontsize=7)
        ax.axhline(0.0, color="#888", lw=0.6)
        ax.set_xlabel(f"mean of {a} and {b} (mL)", fontsize=8)
        ax.set_ylabel(f"{a} - {b} (mL)", fontsize=8)
        cr = f", CR {row['cr_ml']:.2f} mL" if _finite(row.get("cr_ml")) else ""
        ax.set_title(f"{lesion}: {a} vs {b}{cr}", fontsize=9)
        ax.tick_params(labelsize=7)
    return _finish(fig)


def volume_scatter_figure(volume_pairs: Rows, agreement: Rows, lesion: str) -> bytes | None:
    """Volumes of ``a`` against ``b`` per pair, identity line, Pearson r in the title."""
    fig, panels = _pair_panels(volume_pairs, agreement, lesion)
    for ax, row, va, vb in panels:
        a, b = row["source_a"], row["source_b"]
        top = float(max(va.max(initial=0.0), vb.max(initial=0.0), 1e-3)) * 1.05
        ax.plot([0, top], [0, top], color="#888", lw=0.8)
        ax.plot(vb, va, "o", ms=4, alpha=0.7)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(f"{b} (mL)", fontsize=8)
        ax.set_ylabel(f"{a} (mL)", fontsize=8)
        r = f"r = {row['pearson_r']:.3f}" if _finite(row.get("pearson_r")) else "r undefined"
        ax.set_title(f"{lesion}: {a} vs {b}, {r}", fontsize=9)
        ax.tick_params(labelsize=7)
    return _finish(fig)


def learning_curves_figure(curves: Rows) -> bytes | None:
    """Training (solid) and validation (dashed) MSE per epoch, one panel per training run,
    one colour per fold, log scale (the seed's Figure 4); None without rows."""
    runs = list(dict.fromkeys(r["run"] for r in curves))
    if not runs:
        return None
    fig, axes = _grid(len(runs), size=(4.2, 3.2))
    for ax, run in zip(axes, runs, strict=True):
        rows = _select(curves, run=run)
        for j, fold in enumerate(dict.fromkeys(r["fold"] for r in rows)):
            sel = _select(rows, fold=fold)
            epochs = [r["epoch"] for r in sel]
            colour = _COLOURS[j % len(_COLOURS)]
            for key, style in (("train_mse", "-"), ("val_mse", "--")):
                values = [r[key] if _finite(r.get(key)) else np.nan for r in sel]
                label = f"fold {fold} {key.split('_')[0]}"
                ax.plot(epochs, values, style, color=colour, lw=1, label=label)
        ax.set_yscale("log")
        head = rows[0]
        ax.set_title(
            f"{str(head.get('target', '')).upper()} ({head.get('target_source')})", fontsize=9
        )
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("MSE (normalised [0, 1])", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    return _finish(fig)


def _training_section(ev: Mapping[str, Any]) -> str:
    t = ev["tables"]
    if not (t.get("cv") or t.get("test") or t.get("learning_curves")):
        return ""
    png = learning_curves_figure(t.get("learning_curves", []))
    return _section(
        "training",
        "Training (Table 1, Figure 4)",
        _table_block("cv", ev)
        + _table_block("test", ev)
        + _figure_html(png, "learning-curves", "learning curves")
        + _table_block("learning_curves", ev, folded=True),
    )


def _patients_section(ev: Mapping[str, Any]) -> str:
    t = ev["tables"]
    if "patients" not in t and "failures" not in t:
        return ""
    return _section(
        "patients",
        "Patients",
        _table_block("failures", ev) + _table_block("patients", ev, folded=True),
    )


# ----------------------------------------------------------------------------- html
def _number(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _header(column: str) -> str:
    unit = next((u for s, u in _SUFFIX_UNITS.items() if column.endswith(s)), None)
    label = html.escape(column)
    return f"{label} ({unit})" if unit else label


def _data_table(name: str, rows: Rows) -> str:
    """One table as HTML (``id="table-<name>"``), numbers to 4 significant digits."""
    columns = table_columns(rows)
    head = "".join(f"<th>{_header(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"t" if isinstance(r.get(c), str) else ""}">{_number(r.get(c))}</td>'
            for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return f'<table class="data" id="table-{name}"><tr>{head}</tr>{body}</table>'


def _figure_html(png: bytes | None, ident: str, alt: str) -> str:
    return f'<div id="figure-{ident}">{_img(png, alt)}</div>' if png else ""


def _table_block(name: str, ev: Mapping[str, Any], *, folded: bool = False) -> str:
    rows = ev["tables"].get(name, [])
    caption = html.escape(ev.get("captions", {}).get(name, ""))
    table = _data_table(name, rows) if rows else f'<p id="table-{name}">no rows</p>'
    if folded:
        table = f"<details><summary>{len(rows)} rows</summary>{table}</details>"
    return f'<h2>{html.escape(name.replace("_", " "))}</h2><p class="caption">{caption}</p>{table}'


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{html.escape(title)}</h2>{body}</section>'


def _lesion_figures(ev: Mapping[str, Any]) -> str:
    t, lesions = ev["tables"], ev["settings"].get("lesions", [])
    parts = []
    for lesion in lesions:
        ba = bland_altman_figure(t["volume_pairs"], t["volume_agreement"], lesion)
        sc = volume_scatter_figure(t["volume_pairs"], t["volume_agreement"], lesion)
        parts.append(_figure_html(ba, f"bland-altman-{lesion}", f"Bland-Altman {lesion}"))
        parts.append(_figure_html(sc, f"scatter-{lesion}", f"volume scatter {lesion}"))
    return "".join(parts)


def _volume_figures(ev: Mapping[str, Any]) -> str:
    s, t = ev["settings"], ev["tables"]
    out = sorted({r["patient"] for r in t.get("exclusions", []) if r["excluded_from_volumes"]})
    return "".join(
        _figure_html(
            volumes_figure(t["volumes"], lesion, s.get("sources", []), excluded=out),
            f"volumes-{lesion}",
            f"volumes {lesion}",
        )
        for lesion in s.get("lesions", [])
    )


def _settings_section(ev: Mapping[str, Any], provenance: Mapping[str, Any] | None) -> str:
    s = ev["settings"]
    items = {k: v for k, v in s.items() if k != "exclusion_rule"}
    items.update(provenance or {})
    rows = "".join(
        f'<tr><td class="t">{html.escape(str(k))}</td><td class="t">{_number(v)}</td></tr>'
        for k, v in items.items()
    )
    rule = html.escape(str(s.get("exclusion_rule", "")))
    return _section(
        "settings", "How this was evaluated", f'<table class="data">{rows}</table><p>{rule}</p>'
    )


def render_evaluation_html(
    evaluation: Any, *, title: str = "ctpmaps evaluation", provenance: Mapping | None = None
) -> str:
    """The evaluation page as one HTML string.

    Parameters
    ----------
    evaluation : CohortEvaluation or mapping
        An object with ``as_dict()`` or a mapping with ``settings``, ``captions`` and
        ``tables`` (as written to JSON).
    title : str
        Page title.
    provenance : mapping, optional
        How it was made (version, command, inputs ...), shown with the settings.
    """
    ev = jsonable(evaluation.as_dict() if hasattr(evaluation, "as_dict") else evaluation)
    t = ev["tables"]
    lesions = ev["settings"].get("lesions", [])
    maps_png = map_error_figure(t.get("maps", []))
    dice_png = dice_figure(t.get("dice_per_patient", []), lesions)
    body = "".join(
        [
            _settings_section(ev, provenance),
            _training_section(ev),
            _section(
                "maps",
                "Maps (Table 1)",
                _figure_html(maps_png, "maps", "map errors")
                + _table_block("maps", ev)
                + _table_block("physical", ev)
                + _table_block("maps_per_patient", ev, folded=True),
            ),
            _section(
                "dice",
                "Lesion overlap (Table 2)",
                _figure_html(dice_png, "dice", "Dice")
                + _table_block("dice", ev)
                + _table_block("dice_per_patient", ev, folded=True),
            ),
            _section(
                "agreement",
                "Volume agreement (Figure 7)",
                _table_block("volume_agreement", ev)
                + _table_block("across_sources", ev)
                + _lesion_figures(ev),
            ),
            _section(
                "volumes",
                "Volumes (Figures 5 and 6)",
                _volume_figures(ev)
                + _table_block("volumes", ev, folded=True)
                + _table_block("volume_pairs", ev, folded=True)
                + _table_block("exclusions", ev, folded=True),
            ),
            _patients_section(ev),
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>reference: "
        f"{html.escape(str(ev['settings'].get('reference', '')))} · patients: "
        f"{_number(ev['settings'].get('n_patients'))}</p></header><main>{body}</main>"
        "<footer>Research software: not a medical device.</footer>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_evaluation_report(
    evaluation: Any,
    path: str | Path,
    *,
    title: str = "ctpmaps evaluation",
    provenance: Mapping | None = None,
) -> Path:
    """Write the evaluation page to ``path`` (atomically) and return it."""
    path = Path(path)
    text = render_evaluation_html(evaluation, title=title, provenance=provenance)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
