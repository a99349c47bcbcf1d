"""The summary page of a batch (``cohort_summary.html``): one row per study, failures with
their messages, and a plot of the volumes; self-contained like the study report."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path
from .figures import _figure, _png
from .html import _CSS, _img

__all__ = ["render_cohort_html", "write_cohort_report", "volumes_figure"]


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}" if np.isfinite(value) else "–"
    return html.escape(str(value))


def volumes_figure(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Core and penumbra volume per study as stacked bars (mL); None without any."""
    done = [r for r in rows if isinstance(r.get("core_ml"), (int, float))]
    if not done:
        return None
    fig = _figure(max(5.0, 0.25 * len(done) + 2), 3.2)
    ax = fig.subplots()
    x = np.arange(len(done))
    core = np.array([r["core_ml"] for r in done], float)
    pen = np.array([r.get("penumbra_ml") or 0.0 for r in done], float)
    ax.bar(x, core, color="#c21d1d", label="core")
    ax.bar(x, pen, bottom=core, color="#1f9e38", label="penumbra")
    ax.set_xticks(x, [r["study"] for r in done], rotation=90, fontsize=6)
    ax.set_ylabel("volume (mL)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def render_cohort_html(rows: Sequence[Mapping[str, Any]], *, title: str) -> str:
    """The page as one HTML string."""
    columns = [c for c in rows[0]] if rows else []
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        f"<tr class='{html.escape(str(r.get('status', '')).split()[0])}'>"
        + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    failed = [r for r in rows if r.get("status") == "failed"]
    counts = {}
    for r in rows:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    summary = ", ".join(f"{n} {html.escape(str(s))}" for s, n in counts.items())
    fail = "".join(
        f"<p class='warn'>{html.escape(str(r['study']))}: {html.escape(str(r.get('error')))}</p>"
        for r in failed
    )
    png = volumes_figure(rows)
    figure = _img(png, "volumes per study") if png else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{summary}</p></header><main>"
        "<p class='disclaimer'><b>Research software, not a medical device.</b></p>"
        f"<section id='failures'><h2>Failures ({len(failed)})</h2>{fail or '<p>none</p>'}"
        "</section>"
        f"<section id='volumes'><h2>Volumes (mL)</h2>{figure}</section>"
        f"<section id='studies'><h2>Studies</h2><table><tr>{head}</tr>{body}</table>"
        "</section></main></body></html>"
    )


def write_cohort_report(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, title: str = "ctpmaps batch"
) -> Path:
    """Write the page to ``path`` atomically and return it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_cohort_html(rows, title=title), encoding="utf-8")
    return path
