"""Small statistics: Eq. 10, Wilson score interval, exact sign test, paired Wilcoxon, bootstrap CI of Eq. 10."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as sps


def relative_improvement(mmd_b: float | np.ndarray, mmd_q: float | np.ndarray) -> float | np.ndarray:
    """Eq. 10: RI = (MMD_B - MMD_Q) / MMD_Q, as a fraction (x100 for %). RI = 1.5 when MMD_B = 2.5 MMD_Q.

    MMD_Q <= 0 gives NaN (the ratio is undefined)."""
    b = np.asarray(mmd_b, dtype=np.float64)
    q = np.asarray(mmd_q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ri = np.where(q > 0, (b - q) / np.where(q > 0, q, 1.0), np.nan)
    return float(ri) if ri.ndim == 0 else ri


def wilson_interval(wins: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion wins/n; (nan, nan) when n == 0.

    centre = (p + z^2/2n) / (1 + z^2/n), half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2).
    7 of 10 at 95 % -> (0.3968, 0.8922)."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= wins <= n:
        raise ValueError(f"wins must lie in 0..n, got {wins} of {n}")
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test of wins vs losses (ties dropped), H0: p = 1/2. 9 vs 1 -> 0.02148."""
    n = wins + losses
    if n == 0:
        return math.nan
    return float(sps.binomtest(int(wins), int(n), 0.5, alternative="two-sided").pvalue)


def wilcoxon_paired(diffs: Sequence[float]) -> tuple[float, float, str | None]:
    """Two-sided Wilcoxon signed-rank test of paired differences -> (statistic, p, note).

    Exact distribution for small samples without ties (scipy's default); zero differences are dropped
    (`zero_method="wilcox"`). Fewer than 2 non-zero differences: (nan, nan, note)."""
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
        note = f"{len(nz)} seeds: smallest possible two-sided p is {pmin:.3g}"
    return float(res.statistic), float(res.pvalue), note


def bootstrap_ri(mmd_b: np.ndarray, mmd_q: np.ndarray, rng: np.random.Generator, resamples: int = 10000,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of Eq. 10 over paired seeds.

    mmd_b, mmd_q: (k,) per-seed final-100-epoch MMD of the paired trials. Each resample draws k seed indices
    with replacement (the pair stays together) and computes mean(b*) / mean(q*) - 1. Returns (low, high);
    (nan, nan) with fewer than 2 seeds or resamples < 1."""
    b = np.asarray(mmd_b, dtype=np.float64)
    q = np.asarray(mmd_q, dtype=np.float64)
    k = len(b)
    if k < 2 or resamples < 1:
        return math.nan, math.nan
    idx = rng.integers(0, k, size=(int(resamples), k))
    ri = relative_improvement(b[idx].mean(axis=1), q[idx].mean(axis=1))
    ri = ri[np.isfinite(ri)]
    if len(ri) == 0:
        return math.nan, math.nan
    alpha = 1 - confidence
    lo, hi = np.quantile(ri, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
