"""Image-quality metrics: the MMD score (Eq. 9), the real-vs-real residual floor and rolling means.

All kernels work on flattened images scaled to [0, 1] (a 5x60x60 patch is an 18,000-vector) and are computed
with matrix products (Gram trick), never with loops over pairs.
"""
from __future__ import annotations

import math

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
) -> float:
    """MMD score of Eq. 9 between two image sets (V-statistic, no square root).

    MMD(P, Q) = mean_{i,j} k(x_i, x_j) + mean_{i,j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)

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
    if kernel == "linear":
        d = a.mean(0) - b.mean(0)
        return float(d @ d)
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
    return float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())


def _median(v: torch.Tensor) -> float:
    """Median with numpy's convention (mean of the two middle values for an even count)."""
    m = v.numel()
    srt = v.reshape(-1).sort().values
    return float(srt[(m - 1) // 2] + srt[m // 2]) / 2.0


def mmd_floor(real_a: np.ndarray | torch.Tensor, real_b: np.ndarray | torch.Tensor, kernel: str = "energy") -> float:
    """Residual MMD between two disjoint real batches (the noise floor reported with each run)."""
    return mmd(real_a, real_b, kernel=kernel)


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


