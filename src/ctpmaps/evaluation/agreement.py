"""Agreement of lesion volumes measured by several sources on the same patients.

The seed study's statistics (Gava et al. 2023, section 2.4): Pearson correlation, Bland-
Altman limits of agreement with the coefficient of repeatability, the intraclass correlation
ICC(1,k), the Friedman test and the mean absolute volume difference. Inputs are paired
volumes in mL, one value per patient (``(n,)`` arrays) or one column per source (``(n, k)``);
every result is a small frozen record whose ``as_dict()`` is JSON-ready.

Conventions
    - Differences are ``a - b``: pass the reference (or the older method) second.
    - Standard deviations use ``n - 1`` (sample SD, as SPSS and the seed).
    - Too few patients for a statistic (fewer than 3 for r and ICC, 2 for Bland-Altman and
      the Friedman/Wilcoxon test) gives NaN fields rather than an error, so a cohort table
      can show a pair with few patients; mismatched shapes and non-finite volumes raise
      `InputError`.

Bland-Altman (Bland & Altman 1986, Lancet i:307-310; 1999, Stat Methods Med Res 8:135-160)
    bias = mean(d), SD = SD(d), limits of agreement = bias -+ 1.96 SD, with ``d = a - b``.

Coefficient of repeatability
    CR = 1.96 sqrt(sum(d_i^2) / n) = 2.77 s_w, where s_w^2 = sum(d_i^2) / (2n) is the
    within-patient variance of the pairs: the repeatability coefficient of Bland & Altman
    1999 (section 4, 1.96 sqrt(2) s_w), the bound that 95 % of differences between two
    measurements of the same quantity stay within; the 1986 paper's "repeatability" section
    takes the differences about zero, their expected mean for replicates. Unlike the limits
    of agreement it is not centred on the bias, so a systematic difference enlarges it:
    CR^2 = 1.96^2 (bias^2 + SD^2 (n - 1) / n). The seed's CR of 17.7-20.9 mL for
    hypoperfusion beside mean absolute differences of 8.5-9.4 +- 4.8-6.5 mL is consistent
    with this uncentred form (1.96 times the root mean square of those differences is about
    20.5 mL).

ICC (Shrout & Fleiss 1979; McGraw & Wong 1996)
    Computed by `pingouin.intraclass_corr`, as the seed. ICC(1,k) = (MSB - MSW) / MSB from
    the one-way ANOVA of patients (MSB between patients, MSW within), the reliability of the
    mean of the k sources; ICC(1,1) and the two-way absolute-agreement ICC(2,1) (pingouin's
    ``ICC(A,1)``) beside it. 95 % confidence intervals from the F distribution.

Friedman test (Friedman 1937)
    `scipy.stats.friedmanchisquare` over k >= 3 sources (patients as blocks). For k = 2 the
    Friedman statistic reduces to a sign test; the Wilcoxon signed-rank test
    (`scipy.stats.wilcoxon`, two-sided, zero differences dropped) is used instead, which
    also uses the size of the differences. ``test`` names which one ran.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._result import Result

__all__ = [
    "Correlation",
    "BlandAltman",
    "Reliability",
    "GroupTest",
    "AbsoluteDifference",
    "pearson",
    "bland_altman",
    "intraclass_correlation",
    "friedman",
    "mean_absolute_difference",
]

#: Normal quantile of the 95 % limits of agreement and of the coefficient of repeatability.
Z95 = 1.96
_NAN = float("nan")


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise InputError("b", f"expected {a.size} volumes paired with a, got {b.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("a, b", "expected finite volumes (drop patients without one first)")
    return a, b


def _columns(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2:
        raise InputError("values", f"expected (patients, sources) with >= 2 sources, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("values", "expected finite volumes (drop incomplete patients first)")
    return v


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Degenerate samples (constant volumes) give NaN, not a warning in the log."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@dataclass(frozen=True)
class Correlation(Result):
    """Pearson correlation of paired volumes.

    Attributes
    ----------
    n : int
        Pairs.
    r : float
        Pearson r (NaN with fewer than 3 pairs or a constant input).
    p : float
        Two-sided p-value of r = 0.
    """

    n: int
    r: float
    p: float


def pearson(a, b) -> Correlation:
    """Pearson correlation coefficient of two paired samples, with its p-value.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired volumes, mL.
    """
    a, b = _paired(a, b)
    if a.size < 3:
        return Correlation(a.size, _NAN, _NAN)
    from scipy import stats  # here: importing scipy.stats costs every command 0.25 s

    with _quiet():
        res = stats.pearsonr(a, b)
    return Correlation(a.size, float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class BlandAltman(Result):
    """Bland-Altman agreement of ``a`` against ``b`` (differences ``a - b``), mL.

    Attributes
    ----------
    n : int
        Pairs.
    bias_ml : float
        Mean difference.
    sd_ml : float
        Sample SD of the differences.
    loa_low_ml, loa_high_ml : float
        95 % limits of agreement, ``bias -+ 1.96 SD``.
    cr_ml : float
        Coefficient of repeatability, ``1.96 sqrt(mean(d^2))`` (module docstring).
    """

    n: int
    bias_ml: float
    sd_ml: float
    loa_low_ml: float
    loa_high_ml: float
    cr_ml: float


def bland_altman(a, b) -> BlandAltman:
    """Bias, limits of agreement and coefficient of repeatability of ``a`` against ``b``.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired volumes, mL; differences are ``a - b``.

    Examples
    --------
    >>> ba = bland_altman([10.0, 20.0, 30.0], [9.0, 21.0, 27.0])
    >>> round(ba.bias_ml, 3), round(ba.sd_ml, 3)
    (1.0, 2.0)
    """
    a, b = _paired(a, b)
    d = a - b
    if d.size < 2:
        return BlandAltman(d.size, _NAN, _NAN, _NAN, _NAN, _NAN)
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    cr = Z95 * float(np.sqrt(np.mean(d**2)))
    return BlandAltman(d.size, bias, sd, bias - Z95 * sd, bias + Z95 * sd, cr)


@dataclass(frozen=True)
class AbsoluteDifference(Result):
    """Mean absolute difference of paired volumes.

    Attributes
    ----------
    n : int
        Pairs.
    mean_ml, sd_ml : float
        Mean and sample SD of ``|a - b|``, mL.
    """

    n: int
    mean_ml: float
    sd_ml: float


def mean_absolute_difference(a, b) -> AbsoluteDifference:
    """Mean and SD of the absolute differences ``|a - b|`` (mL), as the seed's ``x ± y cm3``.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired volumes, mL.
    """
    a, b = _paired(a, b)
    d = np.abs(a - b)
    if d.size == 0:
        return AbsoluteDifference(0, _NAN, _NAN)
    sd = float(d.std(ddof=1)) if d.size > 1 else _NAN
    return AbsoluteDifference(d.size, float(d.mean()), sd)


@dataclass(frozen=True)
class Reliability(Result):
    """Intraclass correlations of k sources over n patients (pingouin).

    Attributes
    ----------
    n_patients, k_sources : int
    icc1k, icc1k_ci95_low, icc1k_ci95_high : float
        ICC(1,k) (one-way random, mean of k sources) and its 95 % CI.
    icc1k_f, icc1k_p : float
        F = MSB / MSW and its p-value.
    icc1, icc1_ci95_low, icc1_ci95_high : float
        ICC(1,1), single source.
    icc2, icc2_ci95_low, icc2_ci95_high : float
        ICC(2,1), two-way random, absolute agreement, single source (pingouin's ICC(A,1)).
    """

    n_patients: int
    k_sources: int
    icc1k: float
    icc1k_ci95_low: float
    icc1k_ci95_high: float
    icc1k_f: float
    icc1k_p: float
    icc1: float
    icc1_ci95_low: float
    icc1_ci95_high: float
    icc2: float
    icc2_ci95_low: float
    icc2_ci95_high: float


#: pingouin >= 0.7 names (McGraw & Wong) and older ones (Shrout & Fleiss) of each ICC used.
_ICC_NAMES = {
    "icc1k": ("ICC(1,k)", "ICC1k"),
    "icc1": ("ICC(1,1)", "ICC1"),
    "icc2": ("ICC(A,1)", "ICC2"),
}


@contextlib.contextmanager
def _full_precision() -> Iterator[None]:
    """pingouin rounds its confidence intervals to 2 decimals by default; keep them whole."""
    import pingouin

    saved = dict(pingouin.options)
    for key in ("round.column.CI95", "round.column.CI95%"):
        pingouin.options[key] = None
    try:
        yield
    finally:
        pingouin.options.clear()
        pingouin.options.update(saved)


def _icc_table(v: np.ndarray) -> dict[str, tuple[float, float, float, float, float]]:
    import pandas as pd
    import pingouin

    n, k = v.shape
    long = pd.DataFrame(
        {"patient": np.repeat(np.arange(n), k), "source": np.tile(np.arange(k), n), "v": v.ravel()}
    )
    with _full_precision(), _quiet():
        table = pingouin.intraclass_corr(long, targets="patient", raters="source", ratings="v")
    table = table.set_index("Type")
    ci = "CI95" if "CI95" in table.columns else "CI95%"
    out = {}
    for key, names in _ICC_NAMES.items():
        row = table.loc[next(name for name in names if name in table.index)]
        low, high = (float(x) for x in row[ci])
        out[key] = (float(row["ICC"]), low, high, float(row["F"]), float(row["pval"]))
    return out


def intraclass_correlation(values) -> Reliability:
    """ICC(1,k), ICC(1,1) and ICC(2,1) with 95 % CIs of volumes from k sources.

    Parameters
    ----------
    values : array_like, shape (n_patients, k_sources)
        Volumes, mL; complete (no missing source).

    Returns
    -------
    Reliability
        NaN fields with fewer than 3 patients (pingouin's ANOVA needs 5 values) or when
        every volume is equal.
    """
    v = _columns(values)
    n, k = v.shape
    if n < 3 or np.ptp(v) == 0:
        return Reliability(n, k, *([_NAN] * 11))
    t = _icc_table(v)
    return Reliability(n, k, *t["icc1k"], *t["icc1"][:3], *t["icc2"][:3])


@dataclass(frozen=True)
class GroupTest(Result):
    """A test of a difference among the volumes of k sources (patients as blocks).

    Attributes
    ----------
    test : str
        ``"friedman"`` (k >= 3) or ``"wilcoxon"`` (signed-rank, k = 2).
    n_patients, k_sources : int
    statistic : float
        Friedman chi-square (k - 1 degrees of freedom) or Wilcoxon's smaller rank sum;
        NaN when every patient's volumes are all tied.
    p : float
        Two-sided p-value.
    """

    test: str
    n_patients: int
    k_sources: int
    statistic: float
    p: float


def friedman(values) -> GroupTest:
    """Friedman test across k >= 3 sources; Wilcoxon signed-rank test for k = 2.

    Parameters
    ----------
    values : array_like, shape (n_patients, k_sources)
        Volumes, mL; complete.
    """
    v = _columns(values)
    n, k = v.shape
    test = "friedman" if k >= 3 else "wilcoxon"
    if n < 2:
        return GroupTest(test, n, k, _NAN, _NAN)
    from scipy import stats  # here, as in `pearson`

    with _quiet():
        if k >= 3:
            res = stats.friedmanchisquare(*v.T)
        else:
            res = stats.wilcoxon(v[:, 0], v[:, 1])
    return GroupTest(test, n, k, float(res.statistic), float(res.pvalue))
