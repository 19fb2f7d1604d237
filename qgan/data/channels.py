"""Grains and the five EBSD channels (paper section "EBSD Data Preprocessing"; spec.md section 6).

Channels, in physical units (``channels``) and scaled to uint8 0..255 (``scale_channels``):

0. IQ stretched per map to 0..1 (1st..99th percentile of the indexed pixels);       uint8 = 255 * v
1. phase label 0 noise / not indexed, 1 BCC, 2 FCC, 3 other;                      uint8 = 85 * v
2. KAM (deg): first-order, 8 neighbours of the same phase, angles above 5 deg ignored, clipped 0..3,
   noise pixels 3.5;                                                               uint8 = 255 * v / 3.5
3. KS deviation (deg) per grain: angular distance of each neighbouring grain pair to the KS inter-variant
   misorientations (BCC|BCC) or to the KS relation (BCC|FCC), clipped 0..15, aggregated over the grain's
   neighbours by a boundary-length-weighted mean (default) or the minimum; grains below 5 px are neither
   neighbours nor given a value; 20 where not available (noise, specks, other phases, no BCC/FCC
   neighbour);                                                                      uint8 = 255 * v / 20
4. central-grain mask 0/1 (only in patches);                                       uint8 = 255 * v

Grains: 5 deg flood fill over 4-neighbours of the same phase (connected components of the graph whose
edges join 4-neighbours of the same non-noise phase misoriented by less than 5 deg).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .io import BCC, FCC, NOISE, OrientationMap
from .orientation import (QuaternionSet, cubic_average, disorientation_angle, distance_to_set, ks_intervariant_set,
                          ks_parent_set, quat_conjugate, quat_multiply)

GRAIN_THRESHOLD_DEG = 5.0
KAM_MAX_DEG = 3.0
KAM_IGNORE_DEG = 5.0
KAM_NOISE_DEG = 3.5
KS_MAX_DEG = 15.0
KS_NA_DEG = 20.0
KS_MIN_GRAIN_PX = 5
"""Grains below this size (mostly mis-indexed specks) are not KS neighbours and get the not-available value."""
KS_AGGREGATES = ("boundary_mean", "min")
KS_AGGREGATE = "boundary_mean"
"""Default aggregation over neighbours: it separates ferrite from bainite on the shared maps, "min" does not
(docs/data.md, "The KS channel")."""
NOISE_VALUES = np.array([0.0, 0.0, KAM_NOISE_DEG, KS_NA_DEG, 0.0], dtype=np.float32)
"""Physical channel values of a noise pixel (also used to pad patches past the map edge)."""
SCALE = np.array([255.0, 85.0, 255.0 / KAM_NOISE_DEG, 255.0 / KS_NA_DEG, 255.0], dtype=np.float32)
"""uint8 = round(clip(value * SCALE, 0, 255)) per channel."""

_NEIGHBOURS_8 = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@lru_cache(maxsize=1)
def _ks_sets() -> tuple[QuaternionSet, QuaternionSet]:
    """(KS inter-variant set, KS parent set), built once per process."""
    return QuaternionSet(ks_intervariant_set()), QuaternionSet(ks_parent_set())


def _shift_pairs(h: int, w: int, dy: int, dx: int) -> tuple[slice, slice, slice, slice]:
    """Slices (a_rows, a_cols, b_rows, b_cols) so that a[..] and b[..] are neighbours offset by (dy, dx)."""
    ar = slice(max(0, -dy), h - max(0, dy))
    ac = slice(max(0, -dx), w - max(0, dx))
    br = slice(max(0, dy), h - max(0, -dy))
    bc = slice(max(0, dx), w - max(0, -dx))
    return ar, ac, br, bc


def stretch_iq(omap: OrientationMap) -> np.ndarray:
    """IQ stretched per map to 0..1: (iq - p1) / (p99 - p1) over indexed pixels, clipped. float32 (H, W)."""
    iq = omap.iq.astype(np.float64)
    ref = iq[omap.phase > 0]
    if ref.size == 0:
        ref = iq.ravel()
    lo, hi = np.percentile(ref, [1.0, 99.0])
    if hi <= lo:
        return np.where(omap.phase > 0, 1.0, 0.0).astype(np.float32)
    return np.clip((iq - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def neighbour_angles(omap: OrientationMap) -> dict:
    """Cubic disorientation (deg) between each pixel and its neighbours at offsets (0,1), (1,-1), (1,0), (1,1):
    dict offset -> float64 array over the overlapping region (see ``_shift_pairs``)."""
    h, w = omap.shape
    out = {}
    for dy, dx in _NEIGHBOURS_8[4:]:
        ar, ac, br, bc = _shift_pairs(h, w, dy, dx)
        out[(dy, dx)] = disorientation_angle(omap.quat[ar, ac], omap.quat[br, bc])
    return out


def kam(omap: OrientationMap, nb: dict | None = None) -> np.ndarray:
    """Kernel average misorientation (deg) float32 (H, W): mean cubic disorientation to the 8 neighbours of
    the same phase, neighbours above 5 deg ignored; 0 where no neighbour qualifies; clipped to 0..3 deg;
    noise pixels 3.5 deg."""
    h, w = omap.shape
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    ph = omap.phase
    nb = neighbour_angles(omap) if nb is None else nb
    for dy, dx in _NEIGHBOURS_8[4:]:  # each unordered neighbour pair once, added to both ends
        ar, ac, br, bc = _shift_pairs(h, w, dy, dx)
        same = (ph[ar, ac] == ph[br, bc]) & (ph[ar, ac] > 0)
        ang = nb[(dy, dx)]
        ok = same & (ang <= KAM_IGNORE_DEG)
        v = np.where(ok, ang, 0.0)
        total[ar, ac] += v
        count[ar, ac] += ok
        total[br, bc] += v
        count[br, bc] += ok
    out = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    out = np.clip(out, 0.0, KAM_MAX_DEG)
    out[ph == NOISE] = KAM_NOISE_DEG
    return out.astype(np.float32)


@dataclass
class Grains:
    """Grain segmentation of a map.

    labels: int64 (H, W) grain id 0..n-1, -1 for noise pixels
    phase: int8 (n,) phase label of each grain
    size: int64 (n,) pixels per grain
    mean_quat: float64 (n, 4) mean orientation
    pairs: int64 (P, 2) neighbouring grain pairs (i < j) sharing a 4-neighbour edge
    pair_length: int64 (P,) boundary length of each pair (number of 4-neighbour pixel edges they share)
    """

    labels: np.ndarray
    phase: np.ndarray
    size: np.ndarray
    mean_quat: np.ndarray
    pairs: np.ndarray
    pair_length: np.ndarray

    @property
    def n(self) -> int:
        return len(self.size)


def segment_grains(omap: OrientationMap, threshold_deg: float = GRAIN_THRESHOLD_DEG, nb: dict | None = None) -> Grains:
    """5 deg flood fill over 4-neighbours of the same phase (connected components, no pixel loop)."""
    h, w = omap.shape
    q, ph = omap.quat, omap.phase
    nb = neighbour_angles(omap) if nb is None else nb
    idx = np.arange(h * w).reshape(h, w)
    rows, cols = [], []
    for dy, dx in ((0, 1), (1, 0)):
        ar, ac, br, bc = _shift_pairs(h, w, dy, dx)
        same = (ph[ar, ac] == ph[br, bc]) & (ph[ar, ac] > 0)
        ok = same & (nb[(dy, dx)] < threshold_deg)
        rows.append(idx[ar, ac][ok])
        cols.append(idx[br, bc][ok])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(h * w, h * w))
    _, comp = connected_components(graph, directed=False)
    valid = ph.ravel() > 0
    # relabel valid components 0..n-1 in order of first appearance (deterministic)
    lab = np.full(h * w, -1, np.int64)
    uniq, first, inv = np.unique(comp[valid], return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    lab[valid] = rank[inv]
    n = len(uniq)
    labels = lab.reshape(h, w)
    flat = labels.ravel()
    size = np.bincount(flat[valid], minlength=n)
    gphase = np.zeros(n, np.int8)
    gphase[flat[valid]] = ph.ravel()[valid]
    mean_q = cubic_average(q.reshape(-1, 4)[valid], flat[valid], n) if n else np.zeros((0, 4))
    pairs = []
    for dy, dx in ((0, 1), (1, 0)):
        ar, ac, br, bc = _shift_pairs(h, w, dy, dx)
        a, b = labels[ar, ac].ravel(), labels[br, bc].ravel()
        m = (a >= 0) & (b >= 0) & (a != b)
        pairs.append(np.column_stack([np.minimum(a[m], b[m]), np.maximum(a[m], b[m])]))
    p = np.concatenate(pairs)
    if len(p):
        p, length = np.unique(p, axis=0, return_counts=True)
    else:
        p, length = p.reshape(0, 2), np.zeros(0, np.int64)
    return Grains(labels, gphase, size, mean_q, p.astype(np.int64), length.astype(np.int64))


def pair_ks_deviation(grains: Grains) -> tuple[np.ndarray, np.ndarray]:
    """KS deviation (deg) of every neighbouring grain pair and its kind.

    Returns (dev float64 (P,), kind int8 (P,)): kind 1 = BCC|BCC (distance to the nearest KS inter-variant
    misorientation), 2 = BCC|FCC (distance to the KS relation), 0 = not applicable (dev = NaN).
    """
    inter, parent = _ks_sets()
    p = grains.pairs
    dev = np.full(len(p), np.nan)
    kind = np.zeros(len(p), np.int8)
    if len(p) == 0:
        return dev, kind
    pa, pb = grains.phase[p[:, 0]], grains.phase[p[:, 1]]
    qa, qb = grains.mean_quat[p[:, 0]], grains.mean_quat[p[:, 1]]
    bb = (pa == BCC) & (pb == BCC)
    if bb.any():
        m = quat_multiply(qb[bb], quat_conjugate(qa[bb]))
        dev[bb] = distance_to_set(m, inter)
        kind[bb] = 1
    bf = ((pa == BCC) & (pb == FCC)) | ((pa == FCC) & (pb == BCC))
    if bf.any():
        qbcc = np.where((pa[bf] == BCC)[:, None], qa[bf], qb[bf])
        qfcc = np.where((pa[bf] == BCC)[:, None], qb[bf], qa[bf])
        dev[bf] = distance_to_set(quat_multiply(qbcc, quat_conjugate(qfcc)), parent)
        kind[bf] = 2
    return dev, kind


def _check_aggregate(aggregate: str) -> None:
    if aggregate not in KS_AGGREGATES:
        raise ValueError(f"unknown KS aggregate {aggregate!r}; expected one of {', '.join(KS_AGGREGATES)}")


def grain_ks_deviation(grains: Grains, aggregate: str = KS_AGGREGATE, min_grain_px: int = KS_MIN_GRAIN_PX) -> np.ndarray:
    """Per-grain KS deviation (deg) float64 (n,).

    Each applicable neighbour pair (BCC|BCC, BCC|FCC; both grains of at least ``min_grain_px`` pixels) has its
    deviation clipped to 0..15 deg; a grain's value is the boundary-length-weighted mean of its pairs
    (``aggregate="boundary_mean"``) or their minimum (``"min"``). 20 deg (not available) for grains below
    ``min_grain_px`` and grains with no applicable neighbour.
    """
    _check_aggregate(aggregate)
    dev, kind = pair_ks_deviation(grains)
    p = grains.pairs
    ok = kind > 0
    if len(p):
        ok &= (grains.size[p[:, 0]] >= min_grain_px) & (grains.size[p[:, 1]] >= min_grain_px)
    d = np.clip(dev[ok], 0.0, KS_MAX_DEG)
    a, b = p[ok, 0], p[ok, 1]
    n = grains.n
    if aggregate == "min":
        out = np.full(n, np.inf)
        np.minimum.at(out, a, d)
        np.minimum.at(out, b, d)
    else:
        wgt = grains.pair_length[ok].astype(np.float64)
        tot = np.bincount(a, wgt * d, n) + np.bincount(b, wgt * d, n)
        cnt = np.bincount(a, wgt, n) + np.bincount(b, wgt, n)
        out = np.divide(tot, cnt, out=np.full(n, np.inf), where=cnt > 0)
    res = np.clip(out, 0.0, KS_MAX_DEG)
    res[~np.isfinite(out)] = KS_NA_DEG
    return res


def channels(omap: OrientationMap, grains: Grains | None = None, nb: dict | None = None,
             ks_aggregate: str = KS_AGGREGATE) -> np.ndarray:
    """The five channels in physical units, float32 (5, H, W): IQ 0..1, phase 0..3, KAM deg, KS deg (see
    :func:`grain_ks_deviation` for ``ks_aggregate``), and a zero mask channel (the mask is defined per
    patch, see :func:`extract_patches`)."""
    _check_aggregate(ks_aggregate)
    nb = neighbour_angles(omap) if nb is None else nb
    grains = segment_grains(omap, nb=nb) if grains is None else grains
    h, w = omap.shape
    out = np.zeros((5, h, w), np.float32)
    out[0] = stretch_iq(omap)
    out[1] = omap.phase
    out[2] = kam(omap, nb)
    gks = grain_ks_deviation(grains, ks_aggregate)
    ks = np.full((h, w), KS_NA_DEG, np.float32)
    m = grains.labels >= 0
    ks[m] = gks[grains.labels[m]]
    out[3] = ks
    return out


def scale_channels(ch: np.ndarray) -> np.ndarray:
    """Physical channels (..., 5, H, W) -> uint8 with the fixed linear scalings of spec.md section 6."""
    v = np.asarray(ch, np.float32) * SCALE.reshape((5, 1, 1))
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def grain_centres(grains: Grains) -> np.ndarray:
    """Per grain, the pixel farthest from the grain boundary (Euclidean distance transform, map edges count
    as boundary). int64 (n, 2) (row, col)."""
    lab = grains.labels
    padded = np.pad(lab, 1, constant_values=-2)
    inner = np.ones(lab.shape, bool)
    c = padded[1:-1, 1:-1]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        inner &= padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx] == c
    dist = ndimage.distance_transform_edt(np.pad(inner, 1, constant_values=False))[1:-1, 1:-1]
    flat_lab = lab.ravel()
    valid = np.flatnonzero(flat_lab >= 0)
    # sort by (grain, -distance, index): first of each grain is its centre (ties -> lowest index)
    order = np.lexsort((valid, -dist.ravel()[valid], flat_lab[valid]))
    v = valid[order]
    g = flat_lab[v]
    first = np.ones(len(g), bool)
    first[1:] = g[1:] != g[:-1]
    centres = np.zeros((grains.n, 2), np.int64)
    centres[g[first]] = np.column_stack(np.unravel_index(v[first], lab.shape))
    return centres


def window_pad_fraction(centres: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """Share of each ``size`` x ``size`` window centred at ``centres`` (n, 2) that lies beyond a map of
    ``shape`` (float64 (n,); windows start at ``centre - size // 2``)."""
    h, w = shape
    c = np.asarray(centres, np.int64).reshape(-1, 2)
    r0 = c[:, 0] - size // 2
    c0 = c[:, 1] - size // 2
    rows = np.clip(np.minimum(r0 + size, h) - np.maximum(r0, 0), 0, size)
    cols = np.clip(np.minimum(c0 + size, w) - np.maximum(c0, 0), 0, size)
    return 1.0 - rows * cols / float(size * size)


def extract_patches(omap: OrientationMap, size: int = 60, min_grain_px: int = 20, phases: tuple[int, ...] = (BCC, FCC),
                    interior_only: bool = False, max_patches: int | None = None,
                    rng: np.random.Generator | None = None, return_info: bool = False,
                    ks_aggregate: str = KS_AGGREGATE):
    """uint8 (N, 5, size, size) patches, one per grain of at least ``min_grain_px`` pixels whose phase is in
    ``phases``, centred on the grain's pixel farthest from its boundary; the mask channel marks that grain.
    Windows past the map edge are padded with the noise values (IQ 0, phase 0, KAM 3.5, KS 20, mask 0).

    interior_only: keep only grains whose window lies fully inside the map. max_patches / rng: keep a random
    subset (in grain order). return_info: also return dict with per-patch 'grain', 'centre', 'phase' and
    'pad_frac' (share of the window beyond the map edge). ks_aggregate: see :func:`grain_ks_deviation`.
    """
    h, w = omap.shape
    if size < 1:
        raise ValueError(f"patch size must be positive, got {size}")
    if size > max(h, w):
        raise ValueError(f"{omap.source or 'map'}: patch size {size} is larger than the map ({h} x {w})")
    nb = neighbour_angles(omap)
    grains = segment_grains(omap, nb=nb)
    ch = channels(omap, grains, nb, ks_aggregate)
    centres = grain_centres(grains)
    sel = np.flatnonzero((grains.size >= min_grain_px) & np.isin(grains.phase, phases))
    half = size // 2
    if interior_only:
        r, c = centres[sel, 0], centres[sel, 1]
        sel = sel[(r - half >= 0) & (r - half + size <= h) & (c - half >= 0) & (c - half + size <= w)]
    if max_patches is not None and len(sel) > max_patches:
        rng = rng or np.random.default_rng(0)
        sel = np.sort(rng.choice(sel, max_patches, replace=False))
    pad = size
    chp = np.empty((4, h + 2 * pad, w + 2 * pad), np.float32)
    chp[:] = NOISE_VALUES[:4].reshape(4, 1, 1)
    chp[:, pad:pad + h, pad:pad + w] = ch[:4]
    chu = np.clip(np.rint(chp * SCALE[:4].reshape(4, 1, 1)), 0, 255).astype(np.uint8)
    labp = np.full((h + 2 * pad, w + 2 * pad), -1, np.int32)
    labp[pad:pad + h, pad:pad + w] = grains.labels
    n = len(sel)
    patches = np.empty((n, 5, size, size), np.uint8)
    if n:
        r0 = centres[sel, 0] - half + pad
        c0 = centres[sel, 1] - half + pad
        ii = (r0[:, None] + np.arange(size)[None, :])[:, :, None]  # (n, size, 1)
        jj = (c0[:, None] + np.arange(size)[None, :])[:, None, :]  # (n, 1, size)
        for c in range(4):
            patches[:, c] = chu[c][ii, jj]
        patches[:, 4] = np.where(labp[ii, jj] == sel[:, None, None].astype(np.int32), 255, 0)
    if return_info:
        return patches, {"grain": sel, "centre": centres[sel], "phase": grains.phase[sel],
                         "pad_frac": window_pad_fraction(centres[sel], (h, w), size)}
    return patches
