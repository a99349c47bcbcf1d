"""A self-contained HTML report: one file, images embedded as base64 PNG, no external
resource (no fonts, scripts or style sheets fetched), readable offline and printable.

Key numbers carry element ids (``core-ml``, ``penumbra-ml``, ``hypoperfusion-ml``,
``mismatch-ml``, ``mismatch-ratio``, ``hir``, ``target-mismatch``) and an inline script sets
``data-images-loaded="true"`` on ``<body>`` once every image has decoded, so a headless
browser can check the page.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path

__all__ = ["ReportContent", "write_report", "render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;
color:#1c1c1c;background:#f4f5f7}
header{background:#1f2a44;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;font-size:13px;opacity:.85}
main{padding:16px 24px;max-width:1500px}
section{background:#fff;border-radius:6px;padding:12px 16px;margin:0 0 16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:4px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 150px;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px}
.card .v{font-size:28px;font-weight:600} .card .u{font-size:13px;color:#555}
.card.core .v{color:#c21d1d} .card.pen .v{color:#1f9e38}
.flag{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600}
.flag.yes{background:#d9f2df;color:#145c25} .flag.no{background:#eee;color:#444}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #dde1e7;padding:3px 8px;
text-align:left} th{background:#f0f2f5}
img{max-width:100%;height:auto;display:block;margin:4px 0}
table.grid td,table.grid th{border:none;padding:1px;text-align:center;vertical-align:middle;
font-weight:normal;background:none;font-size:11px}
table.grid td img{width:205px;image-rendering:pixelated;margin:0}
table.grid th img{width:205px;margin:0} table.grid th{max-width:207px}
td.lab{font-size:11px;color:#444;white-space:nowrap}
pre{font-size:12px;background:#f6f8fa;padding:8px;overflow:auto}
.warn{color:#8a4b00} footer{font-size:12px;color:#666;padding:0 24px 24px}
.disclaimer{background:#fff4e5;border:1px solid #f0c36d;border-radius:6px;padding:8px 12px;
margin:0 0 16px;font-size:14px}
.caveat{padding:6px 10px;border-radius:4px;margin:4px 0;font-size:14px}
.caveat.withhold{background:#fde2e1;border-left:5px solid #c21d1d}
.caveat.warn{background:#fff4e5;border-left:5px solid #e69b00}
.caveat.note{background:#eef2f7;border-left:5px solid #7a8699}
.flag.withheld{background:#fde2e1;color:#8a1010}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
  document.body.setAttribute('data-images-loaded', ok === imgs.length ? 'true' : 'false');
});
"""


@dataclass
class ReportContent:
    """Everything the report shows.

    Attributes
    ----------
    title : str
        Page title.
    study : dict
        What was read: patient id, source, path, dimensions, spacing, frames ...
    decision : dict
        `ctpmaps.lesion.decision_numbers` output.
    volumes_ml : dict
        Volume of every lesion mask, mL.
    slices : list of dict of str to bytes
        Per slice, PNG tiles by column name: ``"overlay"`` then one per map
        (`ctpmaps.report.figures.slice_tiles`).
    colour_bars : dict of str to bytes
        Per map, its colour bar PNG (range and unit), shown above its column.
    slice_labels : list of str
        Caption of each slice (e.g. its position in mm).
    input_functions : bytes or None
        PNG of the AIF and VOF.
    input_locations : bytes or None
        PNG of where the AIF and VOF voxels were taken.
    motion : bytes or None
        PNG of the head motion, when motion correction ran.
    motion_summary : dict or None
        Largest translation/rotation, flagged frames.
    settings : list of (str, str)
        How the maps and lesions were made, one row each.
    provenance : dict
        How it was made: version, created, command, method, timings_s (stage -> s), inputs.
    caveats : list of dict
        Quality findings (``code``, ``severity``, ``message``), shown at the top.
    warnings : list of str
        Reading problems, shown as notes.
    """

    title: str
    study: dict[str, Any]
    decision: dict[str, Any]
    volumes_ml: dict[str, float]
    slices: list[dict[str, bytes]]
    colour_bars: dict[str, bytes] = field(default_factory=dict)
    slice_labels: list[str] = field(default_factory=list)
    input_functions: bytes | None = None
    input_locations: bytes | None = None
    motion: bytes | None = None
    motion_summary: dict[str, Any] | None = None
    settings: list[tuple[str, str]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    caveats: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _card(cls: str, ident: str, label: str, value: str, unit: str) -> str:
    return (
        f'<div class="card {cls}"><div class="u">{html.escape(label)}</div>'
        f'<div class="v" id="{ident}">{value}</div><div class="u">{html.escape(unit)}</div></div>'
    )


def _table(rows: list[tuple[str, str]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{header[0]}</th><th>{header[1]}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _decision_section(c: ReportContent) -> str:
    d = c.decision
    ratio = "∞" if d.get("mismatch_ratio_infinite") else _fmt(d.get("mismatch_ratio"), 2)
    cards = "".join(
        [
            _card("core", "core-ml", "Ischaemic core", _fmt(d.get("core_ml")), "mL"),
            _card("pen", "penumbra-ml", "Penumbra (mismatch)", _fmt(d.get("penumbra_ml")), "mL"),
            _card("", "hypoperfusion-ml", "Hypoperfusion", _fmt(d.get("hypoperfusion_ml")), "mL"),
            _card("", "mismatch-ratio", "Mismatch ratio", ratio, "hypoperfusion / core"),
            _card(
                "",
                "hir",
                "Hypoperfusion intensity ratio",
                _fmt(d.get("hypoperfusion_intensity_ratio"), 2),
                "Tmax>10 s / Tmax>6 s",
            ),
        ]
    )
    target = bool(d.get("target_mismatch"))
    supported = d.get("supported", True)
    word = ("yes" if target else "no") if supported else "withheld"
    p = d.get("profile", {})
    flag = (
        f'<p>DEFUSE-3 target mismatch: <span id="target-mismatch" class="flag '
        f'{word}">{word}</span> '
        f"(core &lt; {p.get('core_below_ml', 70):g} mL, mismatch ≥ "
        f"{p.get('mismatch_at_least_ml', 15):g} mL, ratio ≥ {p.get('ratio_at_least', 1.8):g}); "
        f'affected side: <b id="affected-side">{_fmt(d.get("affected_side"))}</b>; '
        f'mismatch volume <b id="mismatch-ml">{_fmt(d.get("mismatch_ml"))}</b> mL.</p>'
    )
    rows = [(k.replace("_", " "), _fmt(v, 2)) for k, v in c.volumes_ml.items()]
    heading = "Decision numbers" if supported else "Volumes (decision withheld: see caveats)"
    return (
        f'<section id="decision"><h2>{heading}</h2><div class="cards">{cards}</div>'
        f"{flag}<h2>Volumes</h2>{_table(rows, ('mask', 'volume (mL)'))}</section>"
    )


def _provenance_section(c: ReportContent) -> str:
    p = c.provenance
    timings = {k: v for k, v in p.get("timings_s", {}).items() if "." not in k and k != "total"}
    total = sum(float(v) for v in timings.values())
    t_rows = [(k.replace("_", " "), f"{float(v):.2f}") for k, v in timings.items()]
    t_rows.append(("total", f"<b id='total-s'>{total:.1f}</b>"))
    info = [
        ("ctpmaps version", _fmt(p.get("version"))),
        ("created", _fmt(p.get("created"))),
        ("method", f"<span id='method'>{_fmt(p.get('method'))}</span>"),
        ("command", f"<code>{html.escape(' '.join(map(str, p.get('command', []))))}</code>"),
    ]
    settings = [(k, html.escape(v)) for k, v in c.settings]
    return (
        '<section id="provenance"><h2>How this was made</h2>'
        f"{_table(info)}<h2>Settings</h2>"
        f"<div id='settings'>{_table(settings, ('setting', 'value'))}</div>"
        "<p>Every parameter, input checksum and timing is in <code>run.json</code> beside "
        "this report.</p>"
        f"<h2>Time per stage (s)</h2>{_table(t_rows, ('stage', 's'))}</section>"
    )


def _caveats_section(c: ReportContent) -> str:
    items = [(x["severity"], x["message"]) for x in c.caveats]
    items += [("note", w) for w in c.warnings if w not in {m for _, m in items}]
    if not items:
        return ""
    rows = "".join(
        f'<div class="caveat {html.escape(sev)}"><b>{html.escape(sev)}</b>: {html.escape(msg)}'
        "</div>"
        for sev, msg in items
    )
    return f'<section id="caveats"><h2>Caveats</h2>{rows}</section>'


#: How the header names what was read.
_STUDY_LABELS = {
    "source": "source",
    "dimensions": "dimensions",
    "spacing_mm": "voxel size (mm)",
    "frames": "frames",
    "path": "read from",
    "study_instance_uid": "study UID",
}


def _maps_grid(c: ReportContent) -> str:
    """A table: a header of colour bars, then one row of tiles per slice."""
    if not c.slices:
        return "<p>no slices</p>"
    columns = list(c.slices[0])
    head = "".join(
        "<th>core (red), penumbra (green) on the mean frame</th>"
        if name == "overlay"
        else f"<th>{_img(c.colour_bars[name], name) if name in c.colour_bars else name}</th>"
        for name in columns
    )
    labels = c.slice_labels or [f"slice {k + 1}" for k in range(len(c.slices))]
    rows = "".join(
        f'<tr><td class="lab">{html.escape(label)}</td>'
        + "".join(f"<td>{_img(tiles[name], f'{name} {label}')}</td>" for name in columns)
        + "</tr>"
        for tiles, label in zip(c.slices, labels, strict=True)
    )
    return f'<table class="grid"><tr><th></th>{head}</tr>{rows}</table>'


def render_html(content: ReportContent) -> str:
    """The report as one HTML string."""
    c = content
    s = c.study
    subtitle = " · ".join(
        f"{_STUDY_LABELS[k]}: {html.escape(str(v))}"
        for k, v in s.items()
        if k in ("source", "dimensions", "spacing_mm", "frames") and v is not None
    )
    disclaimer = (
        '<p class="disclaimer" id="disclaimer"><b>Research software, not a medical device.</b> '
        "These maps and volumes are not validated for clinical use; any finding must be "
        "reviewed by a qualified physician on the source images.</p>"
    )
    slices = _maps_grid(c)
    curves = _img(c.input_functions, "AIF and VOF") if c.input_functions else "<p>not available</p>"
    if c.input_locations:
        curves += "<p>Where they were taken (AIF red, VOF blue):</p>"
        curves += f"<div id='input-locations'>{_img(c.input_locations, 'AIF and VOF voxels')}</div>"
    motion = ""
    if c.motion is not None:
        rows = [(k.replace("_", " "), _fmt(v, 2)) for k, v in (c.motion_summary or {}).items()]
        motion = (
            f'<section id="motion"><h2>Head motion (corrected)</h2>{_img(c.motion, "motion")}'
            f"{_table(rows) if rows else ''}</section>"
        )
    study_rows = [(_STUDY_LABELS.get(k, k.replace("_", " ")), _fmt(v)) for k, v in s.items()]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(c.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(c.title)}</h1><p>{subtitle}</p></header><main>"
        f"{disclaimer}{_caveats_section(c)}{_decision_section(c)}"
        f'<section id="maps"><h2>Maps and lesions per slice</h2>'
        "<p>Radiological view (patient's right on the left). Core in red, penumbra in green "
        "on the mean frame; colour bars in physical units.</p>"
        f"{slices}</section>"
        f'<section id="curves"><h2>Arterial input and venous output</h2>{curves}</section>'
        f"{motion}"
        f'<section id="study"><h2>Study</h2>{_table(study_rows)}</section>'
        f"{_provenance_section(c)}</main>"
        "<footer>ctpmaps: research software, not a medical device.</footer>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_report(content: ReportContent, path: str | Path) -> Path:
    """Write the report to ``path`` (atomically) and return it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(render_html(content), encoding="utf-8")
    return path
