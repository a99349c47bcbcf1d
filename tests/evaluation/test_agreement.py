"""Agreement statistics against independent references: hand computations from their
definitions and published values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctpmaps.errors import InputError
from ctpmaps.evaluation import (
    bland_altman,
    friedman,
    intraclass_correlation,
    mean_absolute_difference,
    pearson,
)

#: Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)


def _one_way_anova(x: np.ndarray) -> tuple[float, float]:
    """Between-target and within-target mean squares, by hand."""
    n, k = x.shape
    row_means = [sum(r) / k for r in x.tolist()]
    grand = sum(row_means) / n
    ssb = k * sum((m - grand) ** 2 for m in row_means)
    ssw = sum((v - m) ** 2 for r, m in zip(x.tolist(), row_means, strict=True) for v in r)
    return ssb / (n - 1), ssw / (n * (k - 1))


def test_icc1k_equals_the_one_way_anova_by_hand():
    from scipy.stats import f

    msb, msw = _one_way_anova(SHROUT_FLEISS)
    n, k = SHROUT_FLEISS.shape
    rel = intraclass_correlation(SHROUT_FLEISS)
    assert (rel.n_patients, rel.k_sources) == (6, 4)
    assert rel.icc1k == pytest.approx((msb - msw) / msb, rel=1e-12)
    assert rel.icc1 == pytest.approx((msb - msw) / (msb + (k - 1) * msw), rel=1e-12)
    assert rel.icc1k_f == pytest.approx(msb / msw, rel=1e-12)
    # Shrout & Fleiss's confidence interval of ICC(1,k), at full precision (not rounded)
    big_f = msb / msw
    f_low = big_f / f.ppf(0.975, n - 1, n * (k - 1))
    f_high = big_f * f.ppf(0.975, n * (k - 1), n - 1)
    assert rel.icc1k_ci95_low == pytest.approx(1 - 1 / f_low, rel=1e-9)
    assert rel.icc1k_ci95_high == pytest.approx(1 - 1 / f_high, rel=1e-9)


def test_icc_matches_shrout_and_fleiss_published_values():
    rel = intraclass_correlation(SHROUT_FLEISS)
    assert round(rel.icc1, 2) == 0.17  # ICC(1,1)
    assert round(rel.icc2, 2) == 0.29  # ICC(2,1)
    assert round(rel.icc1k, 2) == 0.44  # ICC(1,4)


def test_icc_degenerate_input_gives_nan_not_an_error():
    same = np.full((4, 2), 3.0)
    assert math.isnan(intraclass_correlation(same).icc1k)
    assert math.isnan(intraclass_correlation([[1.0, 2.0], [3.0, 5.0]]).icc1k)  # 2 patients
    with pytest.raises(InputError, match="sources"):
        intraclass_correlation(np.ones((4, 1)))


def test_bland_altman_by_hand():
    a = [12.0, 20.0, 31.0, 8.0, 15.0]
    b = [10.0, 21.0, 27.0, 8.0, 11.0]
    d = [2.0, -1.0, 4.0, 0.0, 4.0]  # a - b
    bias = sum(d) / 5  # 1.8
    sd = math.sqrt(sum((x - bias) ** 2 for x in d) / 4)
    ba = bland_altman(a, b)
    assert ba.n == 5
    assert ba.bias_ml == pytest.approx(1.8)
    assert ba.sd_ml == pytest.approx(sd)
    assert ba.loa_low_ml == pytest.approx(1.8 - 1.96 * sd)
    assert ba.loa_high_ml == pytest.approx(1.8 + 1.96 * sd)
    # coefficient of repeatability: 1.96 x root mean square of the differences (about zero)
    assert ba.cr_ml == pytest.approx(1.96 * math.sqrt((4 + 1 + 16 + 0 + 16) / 5))
    swapped = bland_altman(b, a)
    assert swapped.bias_ml == pytest.approx(-1.8) and swapped.cr_ml == pytest.approx(ba.cr_ml)


def test_mean_absolute_difference_by_hand():
    mad = mean_absolute_difference([1.0, 5.0, 9.0], [2.0, 2.0, 9.0])  # |d| = 1, 3, 0
    assert mad.mean_ml == pytest.approx(4 / 3)
    assert mad.sd_ml == pytest.approx(
        math.sqrt(((1 - 4 / 3) ** 2 + (3 - 4 / 3) ** 2 + (4 / 3) ** 2) / 2)
    )


def test_pearson_by_hand_with_its_exact_p_value():
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0]
    # r from its definition; with n = 4 (2 degrees of freedom) the two-sided p of
    # t = r sqrt(2 / (1 - r^2)) is exactly 1 - t / sqrt(2 + t^2)
    dx, dy = [v - 2.5 for v in x], [v - 2.75 for v in y]
    r = sum(p * q for p, q in zip(dx, dy, strict=True)) / math.sqrt(
        sum(p * p for p in dx) * sum(q * q for q in dy)
    )
    t = r * math.sqrt(2 / (1 - r * r))
    res = pearson(x, y)
    assert res.n == 4
    assert res.r == pytest.approx(r, rel=1e-12)
    assert res.p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    assert math.isnan(pearson([1.0, 2.0], [2.0, 1.0]).r)  # too few pairs
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).r)  # constant input
    with pytest.raises(InputError, match="paired"):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        pearson([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])


def test_friedman_by_hand_from_rank_sums():
    # 5 patients (blocks) x 3 sources, no ties within a block
    v = np.array([[10, 12, 14], [3, 2, 5], [7, 9, 8], [1, 4, 6], [20, 25, 30]], float)
    ranks = [[1, 2, 3], [2, 1, 3], [1, 3, 2], [1, 2, 3], [1, 2, 3]]
    n, k = 5, 3
    rank_sums = [sum(r[j] for r in ranks) for j in range(k)]  # 6, 10, 14
    chi2 = 12 / (n * k * (k + 1)) * sum(s * s for s in rank_sums) - 3 * n * (k + 1)
    res = friedman(v)
    assert (res.test, res.n_patients, res.k_sources) == ("friedman", 5, 3)
    assert res.statistic == pytest.approx(chi2)  # 6.4
    assert res.p == pytest.approx(math.exp(-chi2 / 2))  # chi-square, 2 df: sf = exp(-x / 2)


def test_two_sources_use_the_wilcoxon_signed_rank_test():
    v = np.array([[1.0, 1.5], [2.0, 2.5], [3.0, 2.0], [4.0, 6.0], [5.0, 7.0], [6.0, 9.0]])
    res = friedman(v)
    assert res.test == "wilcoxon"
    # differences -0.5, -0.5, +1, -2, -2, -3: ranks 1.5, 1.5, 3, 4.5, 4.5, 6; W+ = 3
    assert res.statistic == pytest.approx(3.0)
    all_one_sign = friedman(np.column_stack([np.arange(6.0), np.arange(6.0) + [1, 2, 3, 4, 5, 6]]))
    assert all_one_sign.p == pytest.approx(2 / 2**6)  # exact: both extreme sign patterns


def test_results_are_json_ready():
    d = bland_altman([1.0], [2.0]).as_dict()
    assert d["n"] == 1 and d["bias_ml"] is None  # too few pairs: NaN becomes null
