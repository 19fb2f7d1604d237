"""MMD (Eq. 9) against brute-force numpy references; rolling and tail means."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from qgan.metrics import mmd, rolling_mean, tail_mean, to_unit


def _brute(x, y, kernel):
    """Independent reference: explicit double loop over all pairs (V-statistic)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    if kernel == "rbf":
        dxx = [np.sum((x[i] - x[j]) ** 2) for i in range(len(x)) for j in range(i + 1, len(x))]
        dyy = [np.sum((y[i] - y[j]) ** 2) for i in range(len(y)) for j in range(i + 1, len(y))]
        dxy = [np.sum((x[i] - y[j]) ** 2) for i in range(len(x)) for j in range(len(y))]
        s2 = np.median(dxx + dyy + dxy)

    def k(a, b):
        if kernel == "energy":
            return -np.sqrt(np.sum((a - b) ** 2))
        if kernel == "linear":
            return float(a @ b)
        return math.exp(-np.sum((a - b) ** 2) / (2 * s2))

    kxx = np.mean([[k(a, b) for b in x] for a in x])
    kyy = np.mean([[k(a, b) for b in y] for a in y])
    kxy = np.mean([[k(a, b) for b in y] for a in x])
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("kernel", ["energy", "linear", "rbf"])
def test_mmd_matches_brute_force_numpy(kernel):
    rng = np.random.default_rng(1)
    x = rng.random((7, 5, 6, 6))
    y = rng.random((5, 5, 6, 6)) * 0.8 + 0.1
    got = mmd(x, y, kernel=kernel)
    want = _brute(x, y, kernel)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert got > 0


@pytest.mark.parametrize("kernel", ["energy", "linear", "rbf"])
def test_mmd_is_zero_for_identical_sets(kernel):
    rng = np.random.default_rng(2)
    x = rng.random((9, 5, 8, 8))
    assert mmd(x, x.copy(), kernel=kernel) == pytest.approx(0.0, abs=1e-12)


def test_energy_mmd_grows_with_shift_and_is_scale_linear():
    rng = np.random.default_rng(3)
    x = rng.random((20, 50))
    small = mmd(x, x + 0.05)
    large = mmd(x, x + 0.3)
    assert 0 < small < large
    # energy distance is homogeneous of degree 1 in pixel scale (Eq. 10 ratios do not depend on scaling)
    assert mmd(2 * x, 2 * (x + 0.3)) == pytest.approx(2 * large, rel=1e-9)


def test_mmd_accepts_torch_uint8_via_to_unit_and_rejects_bad_input():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (4, 5, 6, 6), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 5, 6, 6), dtype=np.uint8)
    got = mmd(to_unit(torch.from_numpy(a)), to_unit(b))
    assert got == pytest.approx(_brute(a / 255.0, b / 255.0, "energy"), rel=1e-9)
    with pytest.raises(ValueError, match="kernel"):
        mmd(a, b, kernel="cosine")
    with pytest.raises(ValueError, match="sizes differ"):
        mmd(np.zeros((2, 3)), np.zeros((2, 4)))


def test_rolling_mean_matches_pandas_and_skips_nan():
    rng = np.random.default_rng(5)
    v = rng.random(50)
    v[[3, 10, 11, 30]] = np.nan
    got = rolling_mean(v, 7)
    want = pd.Series(v).rolling(7, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(rolling_mean([np.nan, np.nan, 1.0], 2)[0])


def test_tail_mean_uses_what_exists():
    assert tail_mean([1.0, 2.0, 3.0], 100) == pytest.approx(2.0)
    assert tail_mean([1.0, np.nan, 3.0, 5.0], 2) == pytest.approx(4.0)
    assert math.isnan(tail_mean([np.nan], 10))
