"""The minimal forward model itself: independent of the project, and physically consistent."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from forward_model import (
    AIFS,
    FINE_DT,
    KAPPA,
    RHO,
    Region,
    exponential_kernel,
    first_max_time,
    impulse_response,
    residue,
    simulate,
)

SOURCE = Path(__file__).with_name("forward_model.py")


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        (SOURCE, {"numpy", "scipy"}),
        # the DRO: its curves from this model, its files with pydicom and nibabel
        (
            SOURCE.with_name("dro.py"),
            {"numpy", "datetime", "pathlib", "nibabel", "pydicom", "forward_model"},
        ),
    ],
)
def test_imports_nothing_from_the_project(source: Path, allowed: set[str]) -> None:
    """No `ctpmaps` module (phantom, physics, fitters, readers) at all."""
    tree = ast.parse(source.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            names.add(node.module.split(".")[0])
    assert names <= {"__future__", "dataclasses"} | allowed, names


@pytest.mark.parametrize(
    "shape", ["box", "exponential", "triangular", "uniform:0.5", 1.0, 3.0, 10.0]
)
@pytest.mark.parametrize("mtt", [2.0, 6.0, 12.0])
def test_residues_start_at_one_and_integrate_to_mtt(shape, mtt: float) -> None:
    t = np.arange(0.0, 400.0, FINE_DT / 4)
    r = residue(t, mtt, shape)
    assert r[0] == pytest.approx(1.0)
    assert np.all(np.diff(r) <= 1e-12) and residue(np.array([-0.1]), mtt, shape)[0] == 0
    assert np.trapezoid(r, t) == pytest.approx(mtt, rel=2e-3)


def test_gamma_transit_times_span_exponential_to_box() -> None:
    t = np.arange(0.0, 60.0, FINE_DT)
    np.testing.assert_allclose(residue(t, 5.0, 1.0), residue(t, 5.0, "exponential"), atol=1e-12)
    gap = np.abs(residue(t, 5.0, 400.0) - residue(t, 5.0, "box")).sum() * FINE_DT
    assert gap < 0.25  # s, of a 5 s box: the edge is spread over ~1 s


@pytest.mark.parametrize("tau", [0.0, 0.5, 3.0])
def test_transport_kernel_has_unit_area(tau: float) -> None:
    t = np.arange(0.0, 80.0, FINE_DT)
    assert exponential_kernel(t, tau).sum() * FINE_DT == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(AIFS))
def test_input_functions_start_at_their_arrival(name: str) -> None:
    t = np.arange(0.0, 90.0, FINE_DT)
    a = AIFS[name](t, arrival=6.0)
    assert np.all(a[t < 6.0] == 0) and a[(t > 6.0) & (t < 7.0)].max() > 0
    assert a.min() >= -1e-9 and a.max() == pytest.approx(300.0, rel=0.1)
    if name == "double":  # two maxima: an interrupted injection
        peaks = (a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:]) & (a[1:-1] > 0.3 * a.max())
        assert peaks.sum() == 2


@pytest.mark.parametrize("shape", ["box", "exponential", 3.0])
@pytest.mark.parametrize("dispersion", [0.0, 2.0])
def test_indicator_dilution_gives_back_the_cbv(shape, dispersion: float) -> None:
    """Over a long acquisition, (kappa / rho) * 100 * ∫C / ∫a is the true CBV."""
    regions = [Region(50.0, 4.0, 1.5, shape, dispersion), Region(15.0, 10.0, 3.0, shape)]
    times = np.arange(0.0, 300.0, 0.5)
    c = simulate(regions, aif="gamma", times=times)
    cbv = KAPPA / RHO * 100 * np.trapezoid(c.tissue, times) / np.trapezoid(c.aif, times)
    np.testing.assert_allclose(cbv, c.truth("cbv"), rtol=5e-3)


def test_tmax_truth_is_the_first_maximum_of_the_impulse_response() -> None:
    tf = np.arange(0.0, 80.0, FINE_DT)
    for shape in ("box", "exponential", 3.0):
        h = impulse_response(tf, Region(40.0, 5.0, 2.5, shape))
        assert h.max() == pytest.approx(1.0, abs=1e-9)  # R(0) = 1: the peak height is CBF
        assert first_max_time(tf, h) == pytest.approx(2.5, abs=FINE_DT)
    # Dispersion rounds the onset: a dispersed box keeps rising until its end.
    h = impulse_response(tf, Region(40.0, 5.0, 2.5, "box", 1.0))
    assert first_max_time(tf, h) == pytest.approx(7.5, abs=FINE_DT)
    h = impulse_response(tf, Region(40.0, 5.0, 2.5, "exponential", 1.0))
    assert 2.5 + 1.0 < first_max_time(tf, h) < 2.5 + 3.0
