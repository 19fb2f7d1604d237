"""Eq. 10, Wilson interval, sign test, Wilcoxon and bootstrap pinned to hand-computed values."""
import math

import numpy as np
import pytest

from analysis import stats
from analysis.collect import normalize_value, window_means


def test_relative_improvement_uses_qcbm_denominator_150_percent():
    assert stats.relative_improvement(2.5, 1.0) == pytest.approx(1.5)
    assert stats.relative_improvement(0.55, 1.0) == pytest.approx(-0.45)
    assert stats.relative_improvement(0.25, 0.1) == pytest.approx(1.5)   # scale-free


def test_relative_improvement_nan_for_nonpositive_qcbm_mmd():
    assert math.isnan(stats.relative_improvement(1.0, 0.0))
    out = stats.relative_improvement(np.array([2.0, 1.0]), np.array([1.0, -1.0]))
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1])


def test_wilson_interval_matches_hand_computed_values():
    lo, hi = stats.wilson_interval(7, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.3968, 0.8922)
    lo, hi = stats.wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and round(lo, 4) == 0.7225
    lo, hi = stats.wilson_interval(0, 5)
    assert lo == pytest.approx(0.0) and round(hi, 4) == 0.4345
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))


def test_wilson_rejects_wins_above_n():
    with pytest.raises(ValueError, match="wins"):
        stats.wilson_interval(11, 10)


def test_sign_test_two_sided_exact_binomial():
    assert stats.sign_test(9, 1) == pytest.approx(22 / 1024, abs=1e-12)   # 0.02148
    assert round(stats.sign_test(9, 1), 5) == 0.02148
    assert stats.sign_test(5, 0) == pytest.approx(2 / 32)
    assert stats.sign_test(5, 5) == pytest.approx(1.0)
    assert math.isnan(stats.sign_test(0, 0))


def test_wilcoxon_exact_small_sample_and_too_few_seeds():
    stat, p, note = stats.wilcoxon_paired([0.1, 0.2, 0.3, 0.4, 0.5])
    assert p == pytest.approx(2 / 32) and stat == 0.0
    assert "smallest possible" in note
    stat, p, note = stats.wilcoxon_paired([0.3])
    assert math.isnan(p) and "too few" in note
    stat, p, note = stats.wilcoxon_paired([0.0, 0.0, 0.0])
    assert math.isnan(p)


def test_bootstrap_ri_is_seeded_and_brackets_the_estimate():
    b = np.array([2.0, 3.0, 2.5, 2.2])
    q = np.array([1.0, 1.1, 0.9, 1.2])
    a = stats.bootstrap_ri(b, q, np.random.default_rng(1), 4000)
    again = stats.bootstrap_ri(b, q, np.random.default_rng(1), 4000)
    assert a == again
    ri = stats.relative_improvement(b.mean(), q.mean())
    assert a[0] < ri < a[1]
    # the bootstrap can never leave the range of per-resample ratios of the extreme seeds
    assert a[0] >= (b.min() / q.max()) - 1 and a[1] <= (b.max() / q.min()) - 1
    assert all(math.isnan(v) for v in stats.bootstrap_ri(b[:1], q[:1], np.random.default_rng(0), 100))


def test_window_means_last_100_of_150_epochs_skips_unevaluated():
    epoch = np.arange(1, 151)
    mmd = np.where(epoch % 2 == 0, epoch.astype(float), np.nan)   # evaluated every 2nd epoch
    w = window_means(epoch, mmd)
    expected = np.mean(np.arange(52, 151, 2))                      # even epochs in 51..150
    assert w["mmd_last100"] == pytest.approx(expected)
    assert w["mmd_last500"] == pytest.approx(np.mean(np.arange(2, 151, 2)))  # window min(500, 150)
    assert w["mmd_final"] == 150.0 and w["mmd_min"] == 2.0


def test_normalize_value_makes_equal_configs_compare_equal():
    assert normalize_value(10.0) == 10 and isinstance(normalize_value(10.0), int)
    assert normalize_value(float("nan")) is None
    assert normalize_value((1, 2.0)) == [1, 2]
    assert normalize_value(True) is True
