"""RI printed to the precision of its confidence interval (analysis/fmt.py)."""
import math

import pytest

from analysis.fmt import fmt_ci, fmt_ri, fmt_ri_ci, pct, ri_decimals


def test_small_ri_with_narrow_ci_keeps_its_significant_digits():
    # the case: the title said +0.0 % where the table said +0.046 %
    assert fmt_ri(0.00046, 0.0001, 0.0008) == "+0.046 %"
    assert fmt_ci(0.0001, 0.0008) == "+0.010 % … +0.080 %"


def test_wide_ci_gets_fewer_digits():
    assert fmt_ri(0.352, 0.10, 0.60) == "+35 %"
    assert fmt_ri(0.352, 0.34, 0.36) == "+35.2 %"
    assert fmt_ri(0.352, 0.3519, 0.3521) == "+35.200 %"
    assert ri_decimals(0.10, 0.60) < ri_decimals(0.34, 0.36) < ri_decimals(0.3519, 0.3521)


def test_very_wide_ci_still_prints_whole_percent_and_negative_sign():
    assert fmt_ri(-0.45, -3.0, 2.0) == "-45 %"
    assert fmt_ci(-3.0, 2.0) == "-300 % … +200 %"


def test_without_a_ci_two_significant_digits():
    assert fmt_ri(0.00046) == "+0.046 %"
    assert fmt_ri(1.5) == "+150 %"
    assert fmt_ri(-0.072, math.nan, math.nan) == "-7.2 %"
    assert fmt_ri(0.2, 0.2, 0.2) == "+20 %"           # degenerate CI (all seeds equal): no precision from it


def test_value_that_rounds_to_zero_has_no_sign_and_missing_is_a_dash():
    assert fmt_ri(-0.000001, -0.01, 0.01) == "0.0 %"
    assert pct(0.0) == "0 %"
    assert fmt_ri(math.nan) == "–" and fmt_ri(None) == "–" and fmt_ci(math.nan, 0.1) == "–"


def test_ri_with_ci_in_one_string():
    assert fmt_ri_ci(0.00046, 0.0001, 0.0008) == "+0.046 % (CI +0.010 … +0.080 %)"
    assert fmt_ri_ci(0.5, math.nan, math.nan) == "+50 %"


@pytest.mark.parametrize("half", [1e-4, 0.003, 0.02, 0.07, 0.5])
def test_half_width_is_shown_to_two_significant_digits(half):
    d = ri_decimals(0.1 - half, 0.1 + half)
    assert 10 <= round(100 * half * 10 ** d) < 100          # the half-width in units of the last digit


def test_decimals_are_clamped_to_zero_and_six():
    assert ri_decimals(-5.0, 5.0) == 0                     # +-500 %: whole percent, never rounded to tens
    assert ri_decimals(0.1, 0.1 + 1e-12) == 6
    assert ri_decimals(0.2, 0.1) is None and ri_decimals(None, 0.1) is None
