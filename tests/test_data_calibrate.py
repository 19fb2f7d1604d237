"""Calibration: the default generator's channel statistics match the real maps within the stated tolerances."""
import os

import pytest

from qgan.data.calibrate import TOLERANCES, _within, calibration_table, format_table, shared_ebsd_dir

EBSD = shared_ebsd_dir()


def test_tolerance_rule_uses_the_mean_or_the_range_of_the_real_maps():
    assert _within(1.1, [1.0], "rel", 0.2)[0]
    assert not _within(1.3, [1.0], "rel", 0.2)[0]
    assert _within(0.15, [0.0, 0.2], "abs", 0.01)[0]      # inside the span of two real maps
    assert not _within(0.25, [0.0, 0.2], "abs", 0.01)[0]
    assert not _within(float("nan"), [1.0], "abs", 1.0)[0]


@pytest.mark.skipif(not os.path.isdir(EBSD), reason=f"real maps not found at {EBSD}")
def test_default_generator_matches_every_real_statistic():
    rows = calibration_table(n_maps=3, seed=2)
    assert {r["statistic"] for r in rows} == set(TOLERANCES)
    failed = [r for r in rows if not r["pass"]]
    assert not failed, format_table(failed)
