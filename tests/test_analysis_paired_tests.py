"""Per-setting statistics on scipy: the paired BCa bootstrap of Eq. 10 (with its percentile fallback), the
paired t-test on log MMD, the win / tie / loss rule and the underpowered flag."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats


def test_paired_t_p_matches_scipy_on_the_per_seed_log_ratios():
    b = np.array([0.30, 0.25, 0.41, 0.33, 0.29, 0.36, 0.31])
    a = np.array([0.21, 0.24, 0.30, 0.35, 0.20, 0.28, 0.26])
    res = stats.paired_log_t(b, a, confidence=0.9)
    d = np.log(b) - np.log(a)
    ref = sps.ttest_1samp(d, 0.0)
    assert res.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.t == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p == pytest.approx(sps.ttest_rel(np.log(b), np.log(a)).pvalue, rel=1e-12)
    assert res.mean == pytest.approx(d.mean())
    half = sps.t.ppf(0.95, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert (res.ci_low, res.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_paired_t_undefined_without_spread_or_with_nonpositive_mmd():
    same = stats.paired_log_t([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])         # every log ratio = log 2
    assert same.mean == pytest.approx(math.log(2)) and math.isnan(same.p) and "equal" in same.note
    neg = stats.paired_log_t([1.0, 2.0], [0.5, -0.1])
    assert math.isnan(neg.mean) and "not positive" in neg.note
    one = stats.paired_log_t([1.0], [0.5])
    assert math.isnan(one.p) and one.mean == pytest.approx(math.log(2))


def test_bca_bootstrap_of_ri_is_scipys_paired_bca():
    b = np.array([2.0, 3.0, 2.5, 2.2, 2.9, 2.4])
    a = np.array([1.0, 1.1, 0.9, 1.2, 1.3, 1.0])
    ci = stats.bootstrap_ri_ci(b, a, np.random.default_rng(7), 3000, 0.95)
    ref = sps.bootstrap((b, a), lambda x, y, axis=-1: x.mean(axis=axis) / y.mean(axis=axis) - 1, paired=True,
                        vectorized=True, n_resamples=3000, method="BCa", rng=np.random.default_rng(7))
    assert ci.method == "BCa" and ci.note is None
    assert (ci.low, ci.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


def test_bootstrap_falls_back_to_percentile_where_bca_is_degenerate():
    two = stats.bootstrap_ri_ci(np.array([2.0, 3.0]), np.array([1.0, 1.0]), np.random.default_rng(0), 2000)
    assert two.method == "percentile" and "at least 3" in two.note
    assert (two.low, two.high) == pytest.approx((1.0, 2.0))
    flat = stats.bootstrap_ri_ci(np.full(4, 2.0), np.full(4, 1.0), np.random.default_rng(0), 500)
    assert flat.method == "percentile" and "degenerate" in flat.note
    assert (flat.low, flat.high) == pytest.approx((1.0, 1.0))
    none = stats.bootstrap_ri_ci(np.array([2.0]), np.array([1.0]), np.random.default_rng(0), 500)
    assert none.method is None and math.isnan(none.low)


def test_ci_spanning_zero_is_a_tie_and_nan_ci_is_a_tie():
    assert stats.outcome(0.1, 0.5) == "win"
    assert stats.outcome(-0.5, -0.01) == "loss"
    assert stats.outcome(-0.2, 0.3) == "tie"
    assert stats.outcome(-0.25, 0.0) == "tie"          # touching 0 does not exclude it
    assert stats.outcome(0.0, 0.4) == "tie"
    assert stats.outcome(math.nan, math.nan) == "tie"


def test_five_seeds_are_underpowered_six_are_not():
    flag, note = stats.underpowered(5)
    assert flag and "0.0625" in note
    assert stats.underpowered(6) == (False, None)
    # the reason: with 5 seeds the smallest two-sided Wilcoxon p is 2/32 = 0.0625 > 0.05
    _, p, _ = stats.wilcoxon_paired([1, 2, 3, 4, 5])
    assert p == pytest.approx(0.0625)
    _, p6, _ = stats.wilcoxon_paired([1, 2, 3, 4, 5, 6])
    assert p6 < 0.05
