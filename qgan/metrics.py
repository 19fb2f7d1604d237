"""Image-quality metrics: the MMD score (Eq. 9), the real-vs-real residual floor and rolling means.

All kernels work on flattened images scaled to [0, 1] (a 5x60x60 patch is an 18,000-vector) and are computed
with matrix products (Gram trick), never with loops over pairs.
"""
from __future__ import annotations

import numpy as np
import torch

from qgan.results import tail_mean  # noqa: F401  (the one definition; re-exported)

KERNELS = ("energy", "linear", "rbf")

# Squared distances below this fraction of |x|^2 + |y|^2 are rounding noise of the Gram trick and set to 0,
# so that a pair of identical images has distance exactly 0 (and MMD(x, x) is exactly 0).
_REL_EPS = 1e-12


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) in 0..255 -> float64 tensor (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(images)
    return t.to(torch.float64) / 255.0


def _flat(x: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if device is None:
        device = t.device
    return t.reshape(t.shape[0], -1).to(device=device, dtype=dtype)


def _sq_dists(a: torch.Tensor, b: torch.Tensor, na: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (A, B) by the Gram trick, clamped at 0, rounding noise zeroed."""
    s = na[:, None] + nb[None, :]
    d2 = s - 2.0 * (a @ b.T)
    d2 = torch.where(d2 <= _REL_EPS * s, torch.zeros_like(d2), d2)
    return d2


def mmd(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    kernel: str = "energy",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    unbiased: bool = False,
) -> float:
    """MMD score of Eq. 9 between two image sets (no square root).

    V-statistic (unbiased=False): mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j).
    U-statistic (unbiased=True): the within-set means skip i = j (divide by N(N-1)), so E[MMD] = 0 when both
    sets come from one distribution; for the energy kernel the V-statistic's within-set means are biased
    towards 0 by a factor (N-1)/N, which makes most of the real-vs-real floor (docs/train.md). Each set needs
    two images for the U-statistic.

    x: (Nx, ...) and y: (Ny, ...) images scaled to [0, 1] (any trailing shape; flattened).
    kernel: ``energy`` k = -||x - y||_2 (default: the energy distance, linear in pixel scale);
            ``linear`` k = x . y  (= ||mean x - mean y||^2);
            ``rbf`` k = exp(-||x - y||^2 / (2 s^2)), s^2 = median of the pooled squared distances
            (xx and yy pairs i < j, all xy pairs).
    Returns a Python float (>= 0 up to rounding for all three kernels).
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown MMD kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    dev = torch.device(device) if device is not None else None
    a = _flat(x, dtype, dev)
    b = _flat(y, dtype, a.device)
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError("MMD needs at least one image in each set")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"MMD image sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    if unbiased and (a.shape[0] < 2 or b.shape[0] < 2):
        raise ValueError("the unbiased MMD needs at least two images in each set")
    if kernel == "linear":
        if not unbiased:
            d = a.mean(0) - b.mean(0)
            return float(d @ d)
        sa, sb = a.sum(0), b.sum(0)
        m, k = a.shape[0], b.shape[0]
        kxx = (sa @ sa - (a * a).sum()) / (m * (m - 1))
        kyy = (sb @ sb - (b * b).sum()) / (k * (k - 1))
        return float(kxx + kyy - 2.0 * (sa @ sb) / (m * k))
    na = (a * a).sum(1)
    nb = (b * b).sum(1)
    dxx = _sq_dists(a, a, na, na)
    dyy = _sq_dists(b, b, nb, nb)
    dxy = _sq_dists(a, b, na, nb)
    if kernel == "energy":
        kxx, kyy, kxy = -dxx.sqrt(), -dyy.sqrt(), -dxy.sqrt()
    else:  # rbf, median heuristic over the pooled set (off-diagonal pairs i < j)
        pooled = torch.cat(
            [
                dxx[torch.triu_indices(len(a), len(a), 1, device=a.device).unbind()],
                dyy[torch.triu_indices(len(b), len(b), 1, device=b.device).unbind()],
                dxy.reshape(-1),
            ]
        )
        s2 = _median(pooled) if pooled.numel() else 1.0
        if not s2 > 0:
            s2 = 1.0
        kxx, kyy, kxy = (torch.exp(-d / (2.0 * s2)) for d in (dxx, dyy, dxy))
    if unbiased:
        return float(_offdiag_mean(kxx) + _offdiag_mean(kyy) - 2.0 * kxy.mean())
    return float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())


def _offdiag_mean(k: torch.Tensor) -> torch.Tensor:
    """Mean of a square kernel matrix over i != j."""
    m = k.shape[0]
    return (k.sum() - torch.diagonal(k).sum()) / (m * (m - 1))


def diversity(x: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float64) -> float:
    """Mean pairwise Euclidean distance between the images of one set (flattened, scaled to [0, 1]), over
    pairs i != j: how spread out a generated set is, to compare with the real set's (a collapsed generator
    scores near 0). x: (N, ...) with N >= 2."""
    a = _flat(x, dtype, None)
    if a.shape[0] < 2:
        raise ValueError("diversity needs at least two images")
    na = (a * a).sum(1)
    return float(_offdiag_mean(_sq_dists(a, a, na, na).sqrt()))


def _median(v: torch.Tensor) -> float:
    """Median with numpy's convention (mean of the two middle values for an even count)."""
    m = v.numel()
    srt = v.reshape(-1).sort().values
    return float(srt[(m - 1) // 2] + srt[m // 2]) / 2.0


def mmd_floor(real_a: np.ndarray | torch.Tensor, real_b: np.ndarray | torch.Tensor, kernel: str = "energy",
              unbiased: bool = False) -> float:
    """Residual MMD between two disjoint real batches (the noise floor reported with each run)."""
    return mmd(real_a, real_b, kernel=kernel, unbiased=unbiased)


def rolling_mean(values: np.ndarray | list[float], window: int = 100) -> np.ndarray:
    """Trailing rolling mean over `window` entries, ignoring NaN (entries not evaluated).

    out[t] = mean of the finite values among values[max(0, t - window + 1) .. t]; NaN where there are none.
    """
    if window < 1:
        raise ValueError(f"rolling window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    cs = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(len(v))
    lo = np.maximum(0, idx - window + 1)
    s = cs[idx + 1] - cs[lo]
    c = cn[idx + 1] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


