"""Small statistics on scipy: Eq. 10, Wilson interval, sign test, paired Wilcoxon, the paired BCa bootstrap CI
of Eq. 10, the paired t-test on log MMD, and the win / tie / loss rule.

Conventions: for a comparison "A_vs_B", `mmd_b` is the partner arm's MMD and `mmd_a` the arm in the
denominator, so every statistic here is positive when arm A has the lower (better) MMD.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Sequence

import numpy as np
from scipy import stats as sps

from . import schema


def relative_improvement(mmd_b: float | np.ndarray, mmd_a: float | np.ndarray) -> float | np.ndarray:
    """Eq. 10: RI = (MMD_B - MMD_A) / MMD_A, as a fraction (x100 for %). RI = 1.5 when MMD_B = 2.5 MMD_A.

    For the paper's comparison A is the QCBM and B the Bernoulli baseline. MMD_A <= 0 gives NaN (the ratio
    is undefined)."""
    b = np.asarray(mmd_b, dtype=np.float64)
    a = np.asarray(mmd_a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ri = np.where(a > 0, (b - a) / np.where(a > 0, a, 1.0), np.nan)
    return float(ri) if ri.ndim == 0 else ri


def wilson_interval(wins: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion wins/n (scipy `binomtest(...).proportion_ci`,
    method "wilson"); (nan, nan) when n == 0. 7 of 10 at 95 % -> (0.3968, 0.8922)."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= wins <= n:
        raise ValueError(f"wins must lie in 0..n, got {wins} of {n}")
    ci = sps.binomtest(int(wins), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test of wins vs losses (ties dropped), H0: p = 1/2. 9 vs 1 -> 0.02148."""
    n = wins + losses
    if n == 0:
        return math.nan
    return float(sps.binomtest(int(wins), int(n), 0.5, alternative="two-sided").pvalue)


def wilcoxon_paired(diffs: Sequence[float], what: str = "seeds") -> tuple[float, float, str | None]:
    """Two-sided Wilcoxon signed-rank test of paired differences -> (statistic, p, note).

    Exact distribution for small samples without ties (scipy's default); zero differences are dropped
    (`zero_method="wilcox"`). Fewer than 2 non-zero differences: (nan, nan, note). `what` names the values
    in the note ("seeds", "settings")."""
    d = np.asarray([x for x in diffs if np.isfinite(x)], dtype=np.float64)
    nz = d[d != 0]
    if len(nz) < 2:
        return math.nan, math.nan, f"too few non-zero paired differences for a test ({len(nz)})"
    try:
        res = sps.wilcoxon(nz, zero_method="wilcox", alternative="two-sided")
    except ValueError as exc:  # pragma: no cover - scipy edge cases
        return math.nan, math.nan, f"wilcoxon failed: {exc}"
    note = None
    pmin = 2.0 / 2 ** len(nz)
    if pmin > 0.05:
        note = f"{len(nz)} {what}: smallest possible two-sided Wilcoxon p is {pmin:.3g}"
    return float(res.statistic), float(res.pvalue), note


class BootstrapCI(NamedTuple):
    """A bootstrap confidence interval: ends, the method used ("BCa", "percentile" or None) and a note."""

    low: float
    high: float
    method: str | None
    note: str | None


def _ri_statistic(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Eq. 10 of resampled paired seeds: mean(b) / mean(a) - 1 along `axis` (NaN where mean(a) <= 0)."""
    mb, ma = np.mean(b, axis=axis), np.mean(a, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ma > 0, mb / np.where(ma > 0, ma, 1.0) - 1.0, np.nan)


def bootstrap_ri_ci(mmd_b: np.ndarray, mmd_a: np.ndarray, rng: np.random.Generator, resamples: int = 10000,
                    confidence: float = 0.95) -> BootstrapCI:
    """Paired bootstrap CI of Eq. 10 over seeds: `scipy.stats.bootstrap((b, a), mean(b)/mean(a) - 1,
    paired=True, method="BCa")` (each resample draws k seed indices with replacement; the pair stays together).

    Falls back to the percentile method, with a note, where BCa is degenerate: fewer than 3 seeds (the
    jackknife acceleration needs them), a bootstrap distribution without spread (e.g. all seeds equal), or a
    BCa result that is not finite. (nan, nan, None, note) with fewer than 2 seeds, resamples < 1, or an arm-A
    MMD that is not positive in some seed (the ratio is then undefined in some resamples)."""
    b = np.asarray(mmd_b, dtype=np.float64)
    a = np.asarray(mmd_a, dtype=np.float64)
    k = len(b)
    if k < 2:
        return BootstrapCI(math.nan, math.nan, None, f"only {k} paired seed: no confidence interval")
    if resamples < 1:
        return BootstrapCI(math.nan, math.nan, None, "no bootstrap requested (resamples = 0)")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(a)) and np.all(a > 0)):
        return BootstrapCI(math.nan, math.nan, None,
                           "an arm-A MMD is not positive: Eq. 10 undefined in some resamples, no CI")

    return _bca_or_percentile((b, a), _ri_statistic, True, rng, resamples, confidence,
                              f"{k} seeds: BCa needs at least 3, percentile interval",
                              "BCa degenerate (no spread among the resamples): percentile interval")


def _bca_or_percentile(data: tuple, statistic, paired: bool, rng: np.random.Generator, resamples: int,
                       confidence: float, few_note: str, degenerate_note: str) -> BootstrapCI:
    """`scipy.stats.bootstrap` of `statistic` over `data` (arrays of equal length k): BCa, or the percentile
    method with `few_note` when k < 3 and with `degenerate_note` when BCa is degenerate or not finite."""

    def run(method: str) -> tuple[float, float, bool]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = sps.bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=int(resamples),
                                confidence_level=confidence, method=method, rng=rng)
        degenerate = any(issubclass(w.category, sps.DegenerateDataWarning) for w in caught)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        return lo, hi, degenerate or not (math.isfinite(lo) and math.isfinite(hi))

    if len(data[0]) < 3:
        lo, hi, _ = run("percentile")
        return BootstrapCI(lo, hi, "percentile", few_note)
    lo, hi, bad = run("BCa")
    if not bad:
        return BootstrapCI(lo, hi, "BCa", None)
    lo, hi, _ = run("percentile")
    return BootstrapCI(lo, hi, "percentile", degenerate_note)


def bootstrap_ri(mmd_b: np.ndarray, mmd_a: np.ndarray, rng: np.random.Generator, resamples: int = 10000,
                 confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) of `bootstrap_ri_ci`; (nan, nan) with fewer than 2 seeds or resamples < 1."""
    ci = bootstrap_ri_ci(mmd_b, mmd_a, rng, resamples, confidence)
    return ci.low, ci.high


class LogRatioTest(NamedTuple):
    """Paired t-test of d_s = log MMD_B,s - log MMD_A,s against 0: mean, its t-based CI, t, p, note."""

    mean: float
    ci_low: float
    ci_high: float
    t: float
    p: float
    note: str | None


def paired_log_t(mmd_b: Sequence[float], mmd_a: Sequence[float], confidence: float = 0.95) -> LogRatioTest:
    """Two-sided one-sample t-test (scipy.stats.ttest_1samp) of the per-seed log ratios
    d_s = log MMD_B,s - log MMD_A,s (positive = arm A better; equivalent to ttest_rel on the logs).

    NaN with fewer than 2 seeds, with an MMD that is not positive (no logarithm), or when every d_s is equal
    (no spread: t undefined; the mean is still given)."""
    b = np.asarray(mmd_b, dtype=np.float64)
    a = np.asarray(mmd_a, dtype=np.float64)
    nan = math.nan
    if len(b) == 0:
        return LogRatioTest(nan, nan, nan, nan, nan, "no paired seed")
    if not (np.all(b > 0) and np.all(a > 0)):
        return LogRatioTest(nan, nan, nan, nan, nan, "an MMD is not positive: no log-ratio t-test")
    d = np.log(b) - np.log(a)
    mean = float(d.mean())
    if len(d) < 2:
        return LogRatioTest(mean, nan, nan, nan, nan, "only 1 paired seed: no t-test")
    if float(np.ptp(d)) <= 1e-12 * max(1.0, abs(mean)):
        return LogRatioTest(mean, nan, nan, nan, nan, "all per-seed log ratios equal: t-test undefined")
    res = sps.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(confidence_level=confidence)
    return LogRatioTest(mean, float(ci.low), float(ci.high), float(res.statistic), float(res.pvalue), None)


def outcome(ci_low: float, ci_high: float) -> str:
    """Win / tie / loss of arm A from the RI confidence interval: "win" when it excludes 0 on the positive
    side (low > 0), "loss" when it excludes 0 on the negative side (high < 0), else "tie" (a CI containing or
    touching 0, or a missing / NaN CI)."""
    lo, hi = float(ci_low), float(ci_high)
    if math.isfinite(lo) and lo > 0:
        return "win"
    if math.isfinite(hi) and hi < 0:
        return "loss"
    return "tie"


def underpowered(k: int) -> tuple[bool, str | None]:
    """(flag, note): fewer than schema.MIN_POWERED_SEEDS paired seeds. With k seeds the two-sided Wilcoxon
    signed-rank test's smallest possible p is 2 / 2**k (0.0625 for 5), so it can never reach p < 0.05."""
    if k >= schema.MIN_POWERED_SEEDS:
        return False, None
    return True, (f"underpowered: {k} paired seed{'s' if k != 1 else ''} (< {schema.MIN_POWERED_SEEDS}); "
                  f"the two-sided Wilcoxon cannot go below p = {2.0 / 2 ** k if k else 1.0:.3g}")


def paired_t_power(k: int, sd: float, effect: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with k seeds to detect a mean paired difference `effect` when the
    paired differences have standard deviation `sd` (noncentral t: df = k - 1, ncp = effect / (sd / sqrt k))."""
    if k < 2 or not sd > 0:
        return math.nan
    df = k - 1
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    ncp = effect / (sd / math.sqrt(k))
    power = float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))
    if not 0.0 <= power <= 1.0 or (abs(ncp) > 30 and power < 0.5):  # scipy's nct loses accuracy far out
        power = float(sps.norm.sf(crit - abs(ncp)))
    return power


def seeds_for_power(sd: float, ri: float = 0.2, alpha: float = 0.05, power: float = 0.8,
                    minimum: int = schema.MIN_POWERED_SEEDS, maximum: int = 1000) -> int:
    """Fewest paired seeds for the paired t-test on log MMD to detect a relative improvement `ri` (Eq. 10:
    log-ratio effect log(1 + ri)) at level `alpha` with `power`, given the sd of the paired log-MMD differences;
    never fewer than `minimum` (below 6 seeds the Wilcoxon test beside it cannot reach p < 0.05)."""
    effect = math.log1p(ri)
    for k in range(max(2, minimum), maximum + 1):
        if paired_t_power(k, sd, effect, alpha) >= power:
            return k
    raise ValueError(f"more than {maximum} seeds needed for sd {sd:g} and RI {ri:g}")


def bootstrap_mean_ci(values: Sequence[float], rng: np.random.Generator, resamples: int = 10000,
                      confidence: float = 0.95) -> BootstrapCI:
    """Bootstrap CI of the mean of `values` (e.g. paired differences over seeds): scipy.stats.bootstrap, BCa,
    percentile where BCa is degenerate (fewer than 3 values, no spread); (nan, nan, None, note) with fewer
    than 2 finite values or resamples < 1."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if len(x) < 2:
        return BootstrapCI(math.nan, math.nan, None, f"only {len(x)} value(s): no confidence interval")
    if resamples < 1:
        return BootstrapCI(math.nan, math.nan, None, "no bootstrap requested (resamples = 0)")
    if float(np.ptp(x)) == 0.0:
        return BootstrapCI(float(x[0]), float(x[0]), None, "all values equal: the interval is the value")

    return _bca_or_percentile((x,), np.mean, False, rng, resamples, confidence,
                              f"{len(x)} values: BCa needs at least 3, percentile interval",
                              "BCa degenerate: percentile interval")
