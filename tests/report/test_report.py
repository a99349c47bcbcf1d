"""The HTML report: figures' orientation, self-containment, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from ctpmaps.report import (
    DISPLAY,
    ReportContent,
    colour_bar,
    curves_figure,
    display_slice,
    map_range,
    motion_figure,
    render_html,
    slice_tiles,
    write_report,
)

UNITS = {"cbf": "mL/100 g/min", "cbv": "mL/100 g", "tmax": "s"}


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([-0.5, -0.5, 5.0, 1.0]),  # DICOM-like: x to the left, y to posterior
        np.diag([0.5, 0.5, 5.0, 1.0]),  # RAS: x to the right, y to anterior
        np.array([[0, 0.5, 0, 0], [-0.5, 0, 0, 0], [0, 0, 5, 0], [0, 0, 0, 1.0]]),  # swapped
    ],
)
def test_display_is_radiological(affine):
    """A voxel at the patient's right-anterior shows at the image's top-left."""
    shape = (20, 20, 2)
    vol = np.zeros(shape)
    idx = np.indices(shape).reshape(3, -1)
    world = (affine[:3, :3] @ idx + affine[:3, 3:4]).T.reshape(shape + (3,))
    right_anterior = (world[..., 0] > np.percentile(world[..., 0], 90)) & (
        world[..., 1] > np.percentile(world[..., 1], 90)
    )
    vol[right_anterior] = 1.0
    img = display_slice(vol, 1, affine)
    assert img.shape == (20, 20)
    assert img[:2, :2].all() and img[-5:].sum() == 0 and img[:, -5:].sum() == 0


def _content(n_slices=2, size=48):
    rng = np.random.default_rng(0)
    shape = (size, size, n_slices)
    maps = {
        "cbf": rng.uniform(0, 80, shape).astype(np.float32),
        "cbv": rng.uniform(0, 6, shape).astype(np.float32),
        "tmax": rng.uniform(0, 12, shape).astype(np.float32),
    }
    maps["cbf"][:5] = np.nan
    core = np.zeros(shape, bool)
    core[10:20, 10:20] = True
    pen = np.zeros(shape, bool)
    pen[20:30, 10:20] = True
    affine = np.diag([-1.0, -1.0, 5.0, 1.0])
    mean = rng.normal(40, 10, shape)
    ranges = {k: map_range(k, v) for k, v in maps.items()}
    bars = {
        k: colour_bar(DISPLAY[k]["title"], UNITS[k], cmap=DISPLAY[k]["cmap"], vmin=lo, vmax=hi)
        for k, (lo, hi) in ranges.items()
    }
    tiles = [
        slice_tiles(
            k, maps=maps, mean_frame=mean, affine=affine, ranges=ranges, core=core, penumbra=pen
        )
        for k in range(n_slices)
    ]
    times = np.arange(30) * 1.0
    aif = 300 * np.exp(-0.5 * ((times - 10) / 3) ** 2)
    return ReportContent(
        title="CT perfusion report",
        study={"patient_id": "RPT-7", "source": "array", "dimensions": "48 x 48 x 2"},
        decision={
            "core_ml": 23.4,
            "hypoperfusion_ml": 81.2,
            "penumbra_ml": 57.8,
            "mismatch_ml": 57.8,
            "mismatch_ratio": 3.47,
            "mismatch_ratio_infinite": False,
            "hypoperfusion_intensity_ratio": 0.42,
            "affected_side": "left",
            "target_mismatch": True,
            "profile": {"core_below_ml": 70.0, "mismatch_at_least_ml": 15.0, "ratio_at_least": 1.8},
        },
        volumes_ml={"core": 23.4, "penumbra": 57.8, "hypoperfusion": 81.2},
        slices=tiles,
        colour_bars=bars,
        slice_labels=[f"slice {k + 1}" for k in range(n_slices)],
        input_functions=curves_figure(times, {"AIF": aif, "VOF": 0.5 * np.roll(aif, 4)}),
        motion=motion_figure(
            SimpleNamespace(
                times=times,
                translations_mm=np.zeros((30, 3)),
                rotations_deg=np.zeros((30, 3)),
                flagged=np.zeros(30, bool),
                registered=np.zeros(30, bool),
                reference=0,
                flag_mm=1.0,
                flag_deg=1.0,
            )
        ),
        motion_summary={"max_translation_mm": 0.0},
        provenance={
            "version": "0.1.0",
            "method": "nlr",
            "created": "2026-01-01T00:00:00+00:00",
            "command": ["ctpmaps", "run"],
            "timings_s": {"load": 1.5, "maps": 4.25},
            "parameters": {"method": "nlr"},
        },
    )


def test_html_is_self_contained():
    text = render_html(_content())
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 2 * 4 + 3 + 2  # tiles, colour bars, curves and motion
    from PIL import Image

    for data in images:
        im = Image.open(io.BytesIO(base64.b64decode(data)))
        assert im.size[0] > 10 and im.size[1] > 10
    for ident, value in [
        ("core-ml", "23.4"),
        ("penumbra-ml", "57.8"),
        ("hypoperfusion-ml", "81.2"),
        ("mismatch-ratio", "3.47"),
        ("hir", "0.42"),
        ("target-mismatch", "yes"),
    ]:
        assert re.search(rf'id="{ident}"[^>]*>{re.escape(value)}<', text), ident
    assert "Time per stage" in text and "5.8" in text  # total of the timings


def test_infinite_ratio_and_no_motion():
    c = _content(n_slices=1)
    c.decision.update(core_ml=0.0, mismatch_ratio=None, mismatch_ratio_infinite=True)
    c.motion = None
    text = render_html(c)
    assert re.search(r'id="mismatch-ratio"[^>]*>∞<', text)
    assert 'id="motion"' not in text


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is absent (apt-get install chromium, or set CHROMIUM=<binary>)")
    path = write_report(_content(), tmp_path / "report.html")
    profile = tmp_path / "profile"
    common = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert 'data-images-loaded="true"' in dom, dom[:500]
    n = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert n and n.group(1) == n.group(2) == str(2 * 4 + 3 + 2)
    for ident, value in [("core-ml", "23.4"), ("penumbra-ml", "57.8"), ("target-mismatch", "yes")]:
        assert re.search(rf'id="{ident}"[^>]*>{re.escape(value)}<', dom), ident
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1300,1400", path.as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (1400, 1300)
    assert pixels.std() > 20  # not a blank page
    # the core card's red number is on screen
    red = (pixels[..., 0] > 170) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 50


def test_a_run_report_in_headless_chromium(small_stroke, tmp_path):
    """A real run's report: disclaimer first, caveats, decision withheld for the U-Net, where
    the AIF and VOF were taken, the settings table, the report's own time, every image."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is absent (apt-get install chromium, or set CHROMIUM=<binary>)")
    from ctpmaps.perfusion import METHODS
    from ctpmaps.pipeline import run_study

    common = [browser, *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--virtual-time-budget=5000"]
    for method in ("bsvd", "cnn"):
        r = run_study(small_stroke.study, tmp_path / method, method=method, motion=False,
                      dicom=False)  # fmt: skip
        dom = subprocess.run(
            [*common, "--dump-dom", r.report.as_uri()], capture_output=True, text=True,
            timeout=120,
        ).stdout  # fmt: skip
        assert 'data-images-loaded="true"' in dom, dom[:300]
        assert dom.index('id="disclaimer"') < dom.index('id="decision"')
        assert re.search(r"<td>report</td><td>[0-9.]+</td>", dom)
        rows = re.findall(
            r"<tr><td>([^<]+)</td>", dom.split('id="settings"')[1].split("</table>")[0]
        )
        assert {"method", "bilateral filter", "lesion rule", "hypoperfusion", "core"} <= set(rows)
        if method == "bsvd":
            tmax = f"Tmax &gt; {METHODS['bsvd'].hypoperfusion_tmax_s:g} s"  # its calibrated rule
            assert 'id="input-locations"' in dom and tmax in dom
        else:
            assert re.search(r'id="target-mismatch"[^>]*>withheld<', dom)
            assert 'class="caveat withhold"' in dom and "phantom" in dom
