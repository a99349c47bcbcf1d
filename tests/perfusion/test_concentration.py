"""HU to enhancement: bolus arrival found per study, baseline, ΔHU."""

from __future__ import annotations

import numpy as np
import pytest
from perfsim import gamma_aif

from ctpmaps.errors import FitError, InputError
from ctpmaps.perfusion import baseline, bolus_arrival_frame, enhancement

TIMES = np.arange(89) * 0.5


def brain_frames(t0: float, *, noise: float = 0.0, seed: int = 0, shape=(6, 5, 2)) -> np.ndarray:
    """HU frames: a 30-45 HU baseline plus a bolus arriving at ``t0`` (s)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(30, 45, shape)[..., None]
    bolus = 0.1 * gamma_aif(TIMES, t0=t0)  # tissue-like, 30 HU peak
    frames = base + bolus * rng.uniform(0.5, 1.5, shape)[..., None]
    return (frames + rng.normal(0, noise, frames.shape)).astype(np.float32)


@pytest.mark.parametrize("t0", [0.6, 1.2, 3.0, 8.0, 15.0, 25.0])
@pytest.mark.parametrize("noise", [0.0, 5.0])
def test_arrival_follows_early_and_late_boluses(t0: float, noise: float) -> None:
    frames = brain_frames(t0, noise=noise)
    arrival = bolus_arrival_frame(frames, TIMES)
    bolus = gamma_aif(TIMES, t0=t0)
    first_enhanced = int(np.argmax(bolus > 0.02 * bolus.max()))  # 2 % of the peak
    assert arrival < first_enhanced  # no enhanced frame in the baseline
    assert arrival >= first_enhanced - 5  # and not much of the baseline wasted


def test_arrival_at_first_frame_keeps_one_baseline_frame() -> None:
    frames = brain_frames(-1.0)  # bolus already rising at frame 0
    assert bolus_arrival_frame(frames, TIMES) == 0
    assert baseline(frames, TIMES).shape == frames.shape[:3]


def test_fixed_window_would_break_on_early_bolus() -> None:
    frames = brain_frames(1.2)
    auto = enhancement(frames, TIMES)
    fixed = enhancement(frames, TIMES, n_baseline=8)  # a "first 4 s" window
    # The fixed window averages enhanced frames into the baseline: the pre-bolus frames
    # come out negative; the automatic one keeps them at zero.
    assert np.abs(auto[..., :2]).max() < 1e-3
    assert fixed[..., :2].mean() < -1.0


def test_enhancement_values_dtype_and_shapes() -> None:
    frames = brain_frames(8.0)
    out = enhancement(frames, TIMES)
    assert out.shape == frames.shape and out.dtype == np.float32
    n = bolus_arrival_frame(frames, TIMES) + 1
    np.testing.assert_allclose(out, frames - frames[..., :n].mean(-1, keepdims=True), atol=1e-4)
    flat = enhancement(frames.reshape(-1, TIMES.size), TIMES)
    np.testing.assert_allclose(flat, out.reshape(-1, TIMES.size), atol=1e-5)
    assert enhancement(frames.astype(np.float64), TIMES).dtype == np.float64
    assert enhancement(np.round(frames).astype(np.int16), TIMES).dtype == np.float32


def test_mask_restricts_the_mean_curve() -> None:
    frames = brain_frames(8.0)
    frames[0] = -1000.0  # air: no bolus
    mask = np.ones(frames.shape[:3], bool)
    mask[0] = False
    a = bolus_arrival_frame(frames[mask], TIMES)
    assert baseline(frames, TIMES, mask=mask).shape == frames.shape[:3]
    np.testing.assert_allclose(
        baseline(frames, TIMES, mask=mask), frames[..., : a + 1].mean(-1), rtol=1e-5
    )


def test_errors() -> None:
    frames = brain_frames(8.0)
    with pytest.raises(InputError, match="frames"):
        enhancement(frames, TIMES[:-1])
    with pytest.raises(InputError, match="n_baseline"):
        enhancement(frames, TIMES, n_baseline=0)
    with pytest.raises(InputError, match="mask"):
        baseline(frames, TIMES, mask=np.ones((2, 2), bool))
    with pytest.raises(FitError, match="no contrast bolus"):
        bolus_arrival_frame(np.random.default_rng(0).normal(40, 5, (50, 89)), TIMES)
    bad = brain_frames(8.0).mean((0, 1, 2))
    bad[3] = np.nan
    with pytest.raises(InputError, match="finite"):
        bolus_arrival_frame(bad, TIMES)
