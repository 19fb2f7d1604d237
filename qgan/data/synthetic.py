"""Synthetic virtual EBSD maps of ferrite and bainite (the embedded default dataset).

Ferrite: polygonal, equiaxed grains (Voronoi cells of jittered-grid seeds) with random orientations (so
neighbours are KS-unrelated), a share of grains split into low-angle subgrains, small in-grain orientation
gradients, measurement noise that is stronger along boundaries and in deformed patches (so KAM concentrates
there), IQ dips along boundaries, and unindexed pixels in runs along boundaries and small clusters.

Bainite: prior austenite grains (PAG, random austenite orientation) -> packets (Voronoi cells inside a PAG,
one {111} habit plane each) -> blocks (pairs of the plane's six Kurdjumov-Sachs-type variants with the
10.5 deg sub-block misorientation) -> laths (parallel wavy bands across the packet).  The orientation
relation of each packet is scattered between KS, Greninger-Troiano and Nishiyama-Wassermann (rotation about
the common close-packed plane normal, plus a small tilt).  Retained austenite (FCC, parent orientation) forms
irregular blocks, drawn towards lath and block boundaries (a thresholded smooth random field); laths have
stronger orientation gradients (higher KAM, concentrated at boundaries and in patches) and lower IQ.

Every map goes through the same channel pipeline as a real map (:func:`qgan.data.channels.extract_patches`).
All randomness comes from ``numpy.random.Generator`` objects derived from ``(seed, map index)``, so the
result depends only on the seed, never on the number of worker processes.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .channels import extract_patches
from .io import BCC, FCC, NOISE, OrientationMap
from .orientation import (CUBIC_SYMMETRY, KS_QUATERNION, disorientation_angle, ks_variant_planes,
                          quat_from_axis_angle, quat_multiply, quat_normalize, random_quaternions)

from qgan.results import PHASES  # noqa: E402  (the one definition)

GENERATOR_VERSION = "2"


@dataclass(frozen=True)
class FerriteParams:
    """Ferrite generator parameters (pixels, degrees, IQ on a 0..1 scale)."""

    map_px: int = 192             # square map side
    grain_px: float = 11.5        # mean grain diameter (seed spacing of the jittered grid)
    jitter: float = 0.45          # seed jitter as a fraction of the spacing
    texture_frac: float = 0.8     # share of grains on the gamma fibre (<111> || sheet normal), rest random
    texture_spread_deg: float = 8.0  # scatter about the fibre
    subgrain_frac: float = 0.25   # share of grains split in two subgrains
    subgrain_deg: tuple[float, float] = (5.5, 12.0)  # subgrain misorientation range
    gradient_deg_px: float = 0.07  # mean in-grain orientation gradient
    wobble_deg: float = 0.45      # smooth in-grain orientation noise amplitude
    wobble_px: float = 4.0        # its correlation length
    noise_deg: float = 0.1        # per-pixel measurement noise (per rotation-vector component)
    noise_spread: float = 0.5     # lognormal sigma of the per-grain noise level (heavier KAM tail)
    kam_boundary_gain: float = 2.0  # extra orientation noise at grain boundaries (x base), decaying inwards ...
    kam_boundary_px: float = 1.5  # ... over this distance: KAM concentrates along boundaries
    kam_patch_frac: float = 0.2   # share of the map in deformed patches (smooth random field above a quantile)
    kam_patch_gain: float = 1.0   # extra orientation noise there (x base)
    kam_patch_px: float = 6.0     # correlation length of the patch field
    iq_grain: tuple[float, float] = (0.7, 0.08)  # grain IQ mean, sd
    iq_dip: float = 0.06          # IQ drop at boundaries
    iq_dip_px: float = 1.2        # width of the drop
    iq_noise: float = 0.05
    boundary_noise: float = 0.12  # share of boundary pixels unindexed, in runs along the boundary ...
    boundary_noise_px: float = 0.8  # ... of about this correlation length
    random_noise: float = 0.01    # share of all pixels unindexed, in clusters ...
    noise_blob_px: float = 1.0    # ... of about this size (not salt)
    patches_per_map: int = 96


@dataclass(frozen=True)
class BainiteParams:
    """Bainite generator parameters (pixels, degrees, IQ on a 0..1 scale)."""

    map_px: int = 192
    pag_px: float = 90.0          # prior austenite grain size
    packet_px: float = 40.0       # packet size
    lath_px: float = 7.0          # mean lath width
    lath_sd: float = 0.35         # relative sd of the lath width between packets
    laths_per_block: float = 3.0  # mean laths per block
    wave_px: float = 1.0          # amplitude of the lath-boundary waviness
    or_nw_max: float = 1.0        # OR interpolation KS (0) -> NW (1) drawn uniformly in [0, or_nw_max]
    or_tilt_deg: float = 4.0      # extra random tilt of the OR
    block_tilt_deg: float = 2.0   # random tilt of each block off its ideal variant orientations (rms)
    ra_frac: float = 0.29         # retained austenite: area share of irregular blocks (threshold of a smooth
    ra_blob_px: float = 1.5       # random field of this correlation length) ...
    ra_boundary_bias: float = 1.0  # ... drawn towards block/packet boundaries by this much (field sd units)
    ra_elongation: float = 2.5    # ... and stretched along the laths by this factor
    gradient_deg_px: float = 0.14
    wobble_deg: float = 0.55
    wobble_px: float = 3.0
    noise_deg: float = 0.16
    noise_spread: float = 0.25
    kam_boundary_gain: float = 2.5
    kam_boundary_px: float = 1.0
    kam_patch_frac: float = 0.2
    kam_patch_gain: float = 0.6
    kam_patch_px: float = 6.0
    iq_grain: tuple[float, float] = (0.55, 0.08)
    iq_fcc: float = 0.7
    iq_dip: float = 0.37
    iq_dip_px: float = 1.3
    iq_noise: float = 0.06
    boundary_noise: float = 0.008
    boundary_noise_px: float = 1.0
    random_noise: float = 0.003
    noise_blob_px: float = 1.0
    patches_per_map: int = 96


DEFAULT_PARAMS = {"ferrite": FerriteParams(), "bainite": BainiteParams()}


def params_for(phase: str, overrides: dict | None = None):
    """Default parameters of ``phase`` with ``overrides`` applied (unknown keys -> ValueError)."""
    if phase not in DEFAULT_PARAMS:
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    p = DEFAULT_PARAMS[phase]
    if overrides:
        names = {f.name for f in fields(p)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ValueError(f"unknown {phase} generator parameter(s): {', '.join(bad)}")
        p = replace(p, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()})
    return p


def params_dict(p) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()}


# ----------------------------------------------------------------------------------------------- helpers

def _jittered_seeds(rng: np.random.Generator, h: int, w: int, spacing: float, jitter: float) -> np.ndarray:
    ny, nx = int(np.ceil(h / spacing)) + 2, int(np.ceil(w / spacing)) + 2
    gy, gx = np.meshgrid((np.arange(ny) - 1 + 0.5) * spacing, (np.arange(nx) - 1 + 0.5) * spacing, indexing="ij")
    pts = np.column_stack([gy.ravel(), gx.ravel()])
    pts += rng.uniform(-jitter, jitter, pts.shape) * spacing
    return pts


def _voronoi(seeds: np.ndarray, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    _, idx = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    return idx.reshape(h, w)


def _boundary_distance(labels: np.ndarray) -> np.ndarray:
    """Distance (px) of each pixel to the nearest pixel of another label (boundary pixels: 0.5..1)."""
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return ndimage.distance_transform_edt(~edge) + 0.5


def _small_rotations(rotvec_deg: np.ndarray) -> np.ndarray:
    """Rotation vectors in degrees (..., 3) -> quaternions (..., 4)."""
    v = np.radians(rotvec_deg)
    ang = np.linalg.norm(v, axis=-1)
    axis = np.where(ang[..., None] > 0, v / np.maximum(ang, 1e-12)[..., None], np.array([1.0, 0, 0]))
    return quat_from_axis_angle(axis, ang)


def _smooth_field(rng, shape, sigma: float) -> np.ndarray:
    """A smooth Gaussian random field (H, W) with unit standard deviation."""
    z = rng.normal(size=shape)
    if sigma > 0:
        z = ndimage.gaussian_filter(z, sigma, mode="reflect")
    return z / max(z.std(), 1e-12)


def _top_share(score: np.ndarray, frac: float, where: np.ndarray | None = None) -> np.ndarray:
    """Mask of the ``frac`` share of pixels (among ``where``) with the highest ``score``."""
    where = np.ones(score.shape, bool) if where is None else where
    out = np.zeros(score.shape, bool)
    if frac <= 0 or not where.any():
        return out
    q = np.quantile(score[where], 1.0 - min(frac, 1.0))
    return where & (score > q)


def _noise_multiplier(rng, labels, p) -> np.ndarray:
    """Per-pixel multiplier (H, W) of the orientation noise, mean 1: larger along boundaries (decaying over
    ``kam_boundary_px``) and in smooth deformed patches (``kam_patch_frac`` of the map), so that KAM
    concentrates there as in real maps instead of being uniform."""
    dist = _boundary_distance(labels)
    f = 1.0 + p.kam_boundary_gain * np.exp(-(dist - 0.5) / max(p.kam_boundary_px, 1e-6))
    z = _smooth_field(rng, labels.shape, p.kam_patch_px)
    patch = _top_share(z, p.kam_patch_frac)
    f = f * (1.0 + p.kam_patch_gain * patch)
    return f / f.mean()


def _orientation_field(rng, labels, base_q, centroid, gradient_deg_px, wobble_deg, wobble_px, noise_deg,
                       noise_spread=0.0, noise_field=None):
    """Per-pixel orientation = base orientation of the label * in-grain perturbation (quaternions (H,W,4));
    ``noise_field`` (H, W) multiplies the per-pixel noise."""
    h, w = labels.shape
    n = base_q.shape[0]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # linear gradient: rotation about a random axis growing along a random in-plane direction
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    direc = rng.normal(size=(n, 2))
    direc /= np.linalg.norm(direc, axis=1, keepdims=True)
    mag = rng.exponential(gradient_deg_px, n)
    d = (yy - centroid[labels, 0]) * direc[labels, 0] + (xx - centroid[labels, 1]) * direc[labels, 1]
    rv = axis[labels] * (mag[labels] * d)[..., None]
    if wobble_deg > 0:
        wob = rng.normal(size=(3, h, w))
        wob = np.stack([ndimage.gaussian_filter(c, wobble_px, mode="reflect") for c in wob], -1)
        wob *= wobble_deg / max(wob.std(), 1e-12)
        rv = rv + wob
    scale = noise_deg * rng.lognormal(0.0, noise_spread, n) if noise_spread > 0 else np.full(n, noise_deg)
    local = scale[labels] if noise_field is None else scale[labels] * noise_field
    rv = rv + rng.normal(size=(h, w, 3)) * local[..., None]
    return quat_multiply(base_q[labels], _small_rotations(rv))


def _centroids(labels: np.ndarray, n: int) -> np.ndarray:
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cnt = np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
    return np.column_stack([np.bincount(labels.ravel(), yy.ravel(), n) / cnt,
                            np.bincount(labels.ravel(), xx.ravel(), n) / cnt])


def _iq_and_noise(rng, labels, phase, p, iq_base):
    """IQ field (0..1) with boundary dips and the unindexed pixels (phase set to 0)."""
    dist = _boundary_distance(labels)
    iq = iq_base - p.iq_dip * np.exp(-0.5 * ((dist - 0.5) / p.iq_dip_px) ** 2)
    iq = iq + rng.normal(scale=p.iq_noise, size=labels.shape)
    on_boundary = dist <= 1.0
    # unindexed pixels come in runs along boundaries and in small clusters (real maps), not as salt noise
    runs = _top_share(_smooth_field(rng, labels.shape, p.boundary_noise_px), p.boundary_noise, on_boundary)
    blobs = _top_share(_smooth_field(rng, labels.shape, p.noise_blob_px), p.random_noise)
    noise = runs | blobs
    phase = phase.copy()
    phase[noise] = NOISE
    iq = np.where(noise, rng.uniform(0.0, 0.25, labels.shape), iq)
    return np.clip(iq, 0.0, 1.0).astype(np.float32), phase


# ---------------------------------------------------------------------------------------------- ferrite

def _gamma_fibre(rng: np.random.Generator, n: int, spread_deg: float) -> np.ndarray:
    """Orientations (n, 4) with crystal <111> along the sample normal z (sheet-steel gamma fibre) + scatter."""
    z = np.array([0.0, 0.0, 1.0])
    t = np.ones(3) / np.sqrt(3.0)
    r0 = quat_from_axis_angle(np.cross(z, t), np.arccos(t @ z))
    rz = quat_from_axis_angle(np.broadcast_to(z, (n, 3)), rng.uniform(0, 2 * np.pi, n))
    g = quat_multiply(r0, rz)
    return quat_multiply(_small_rotations(rng.normal(scale=spread_deg / np.sqrt(3), size=(n, 3))), g)


def synthesize_ferrite(rng: np.random.Generator, p: FerriteParams = FerriteParams(),
                       shape: tuple[int, int] | None = None) -> OrientationMap:
    h, w = (p.map_px, p.map_px) if shape is None else (int(shape[0]), int(shape[1]))
    seeds = _jittered_seeds(rng, h, w, p.grain_px, p.jitter)
    grains = _voronoi(seeds, h, w)
    n = len(seeds)
    base = random_quaternions(rng, n)
    fibre = rng.random(n) < p.texture_frac
    base[fibre] = _gamma_fibre(rng, int(fibre.sum()), p.texture_spread_deg)
    # subgrains: split a share of grains along a random line through the seed into two low-angle parts
    split = rng.random(n) < p.subgrain_frac
    direc = rng.normal(size=(n, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    side = ((yy - seeds[grains, 0]) * direc[grains, 0] + (xx - seeds[grains, 1]) * direc[grains, 1]) > 0
    sub = split[grains] & side
    labels = grains + n * sub
    ang = rng.uniform(p.subgrain_deg[0], p.subgrain_deg[1], n)
    ax = rng.normal(size=(n, 3))
    ax /= np.linalg.norm(ax, axis=1, keepdims=True)
    sub_q = quat_multiply(base, quat_from_axis_angle(ax, np.radians(ang)))
    all_q = np.concatenate([base, sub_q])
    cent = _centroids(labels, 2 * n)
    q = _orientation_field(rng, labels, all_q, cent, p.gradient_deg_px, p.wobble_deg, p.wobble_px, p.noise_deg,
                           p.noise_spread, _noise_multiplier(rng, labels, p))
    iq_base = rng.normal(p.iq_grain[0], p.iq_grain[1], 2 * n)[labels]
    phase = np.full((h, w), BCC, np.int8)
    iq, phase = _iq_and_noise(rng, labels, phase, p, iq_base)
    q[phase == NOISE] = [1.0, 0, 0, 0]
    return OrientationMap(quat_normalize(q), phase, iq, 1.0, "synthetic ferrite")


# ---------------------------------------------------------------------------------------------- bainite

_PLANE_OF_VARIANT = ks_variant_planes()
_NORMAL_A = np.array([0.0, 1.0, 1.0]) / np.sqrt(2.0)  # (011)alpha, parallel to (111)gamma
_NW_ANGLE = np.radians(5.2644)


def _variant_pairs() -> np.ndarray:
    """(4, 3, 2) variant indices: per close-packed plane, three pairs with the 10.5 deg sub-block angle."""
    out = np.zeros((4, 3, 2), np.int64)
    v = quat_multiply(KS_QUATERNION, CUBIC_SYMMETRY)  # variants of the identity parent
    for g in range(4):
        members = list(np.flatnonzero(_PLANE_OF_VARIANT == g))
        pairs = []
        while members:
            a = members.pop(0)
            d = [disorientation_angle(v[a], v[b]) for b in members]
            b = members.pop(int(np.argmin(d)))
            pairs.append((a, b))
        out[g] = pairs
    return out


_VARIANT_PAIRS = _variant_pairs()


def _or_quaternions(rng: np.random.Generator, n: int, p: BainiteParams) -> np.ndarray:
    """Orientation relations (n, 4) scattered between KS and NW (rotation about the common plane normal by
    t * 5.26 deg, t in [0, or_nw_max]; GT lies in between) plus a small random tilt."""
    t = rng.uniform(0.0, p.or_nw_max, n)
    rot = quat_from_axis_angle(np.broadcast_to(_NORMAL_A, (n, 3)), _NW_SIGN * t * _NW_ANGLE)
    tilt_ax = rng.normal(size=(n, 3))
    tilt_ax /= np.linalg.norm(tilt_ax, axis=1, keepdims=True)
    tilt = quat_from_axis_angle(tilt_ax, np.radians(np.abs(rng.normal(0, p.or_tilt_deg, n))))
    return quat_multiply(tilt, quat_multiply(rot, KS_QUATERNION))


def _nw_sign() -> float:
    from .orientation import NW_QUATERNION
    plus = quat_multiply(quat_from_axis_angle(_NORMAL_A, _NW_ANGLE), KS_QUATERNION)
    minus = quat_multiply(quat_from_axis_angle(_NORMAL_A, -_NW_ANGLE), KS_QUATERNION)
    return 1.0 if disorientation_angle(plus, NW_QUATERNION) < disorientation_angle(minus, NW_QUATERNION) else -1.0


_NW_SIGN = _nw_sign()


def synthesize_bainite(rng: np.random.Generator, p: BainiteParams = BainiteParams(),
                       shape: tuple[int, int] | None = None) -> OrientationMap:
    h, w = (p.map_px, p.map_px) if shape is None else (int(shape[0]), int(shape[1]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    pag_seeds = _jittered_seeds(rng, h, w, p.pag_px, 0.45)
    pag = _voronoi(pag_seeds, h, w)
    n_pag = len(pag_seeds)
    parent = random_quaternions(rng, n_pag)
    pk_seeds = _jittered_seeds(rng, h, w, p.packet_px, 0.45)
    pk_cell = _voronoi(pk_seeds, h, w)
    _, packet = np.unique(pag * len(pk_seeds) + pk_cell, return_inverse=True)
    packet = packet.reshape(h, w)
    n_pk = int(packet.max()) + 1
    pk_pag = np.zeros(n_pk, np.int64)
    pk_pag[packet.ravel()] = pag.ravel()
    plane = rng.integers(0, 4, n_pk)
    theta = rng.uniform(0, np.pi, n_pk)
    width = np.clip(p.lath_px * np.exp(rng.normal(0, p.lath_sd, n_pk)), 1.5, None)
    orel = _or_quaternions(rng, n_pk, p)
    # lath coordinate across the packet with wavy boundaries
    wave = ndimage.gaussian_filter(rng.normal(size=(h, w)), 3.0)
    wave *= p.wave_px / max(wave.std(), 1e-12)
    u = (yy * np.cos(theta[packet]) + xx * np.sin(theta[packet]) + wave) / width[packet]
    u = u + rng.uniform(0, 1, n_pk)[packet]
    band = np.floor(u).astype(np.int64)
    band -= band.min()
    n_band = int(band.max()) + 1
    # blocks: runs of bands sharing a variant pair; laths alternate within the pair
    block_start = rng.random((n_pk, n_band)) < 1.0 / max(p.laths_per_block, 1.0)
    block_id = np.cumsum(block_start, axis=1)
    pair_of_block = rng.integers(0, 3, (n_pk, n_band + 1))
    pair = np.take_along_axis(pair_of_block, block_id, axis=1)
    member = rng.integers(0, 2, (n_pk, n_band))
    variant = _VARIANT_PAIRS[plane[:, None], pair, member]  # (n_pk, n_band)
    lath_var = variant[packet, band]
    # lath labels: unique (packet, band)
    lath_key = packet * n_band + band
    _, lath = np.unique(lath_key, return_inverse=True)
    lath = lath.reshape(h, w)
    n_lath = int(lath.max()) + 1
    lath_pk = np.zeros(n_lath, np.int64)
    lath_pk[lath.ravel()] = packet.ravel()
    lath_v = np.zeros(n_lath, np.int64)
    lath_v[lath.ravel()] = lath_var.ravel()
    # lath orientation: q_alpha = OR * s_v * q_gamma
    par = parent[pk_pag[lath_pk]]
    lath_q = quat_multiply(orel[lath_pk], quat_multiply(CUBIC_SYMMETRY[lath_v], par))
    if p.block_tilt_deg > 0:  # variant scatter: each block a little off its ideal variant orientations
        lath_blk = np.zeros(n_lath, np.int64)
        lath_blk[lath.ravel()] = (packet * (n_band + 1) + block_id[packet, band]).ravel()
        _, blk = np.unique(lath_blk, return_inverse=True)
        tilt = _small_rotations(rng.normal(scale=p.block_tilt_deg / np.sqrt(3), size=(int(blk.max()) + 1, 3)))
        lath_q = quat_multiply(tilt[blk], lath_q)
    # retained austenite: irregular blocks, the top ra_frac share of a smooth random field that is raised
    # near lath / block / packet boundaries (ADI's austenite sits between bainitic-ferrite sheaves)
    # near lath / block / packet boundaries and elongated along the laths of each packet (the field is read
    # in packet coordinates, its along-lath axis stretched by ra_elongation)
    near = np.minimum(_boundary_distance(lath), 4.0) / 4.0
    side = int(2 ** np.ceil(np.log2(2 * max(h, w) + 8)))
    base = rng.normal(size=(side, side))
    base = ndimage.gaussian_filter(base, p.ra_blob_px, mode="wrap")
    base /= max(base.std(), 1e-12)
    across = yy * np.cos(theta[packet]) + xx * np.sin(theta[packet])
    along = (-yy * np.sin(theta[packet]) + xx * np.cos(theta[packet])) / max(p.ra_elongation, 1e-6)
    offset = rng.uniform(0, side, (n_pk, 2))
    field = ndimage.map_coordinates(base, [across + offset[packet, 0], along + offset[packet, 1]], order=1,
                                    mode="grid-wrap")
    score = field - p.ra_boundary_bias * near
    ra = _top_share(score, p.ra_frac)
    labels = np.where(ra, n_lath + pk_pag[packet], lath)
    all_q = np.concatenate([lath_q, parent])
    cent = _centroids(labels, n_lath + n_pag)
    q = _orientation_field(rng, labels, all_q, cent, p.gradient_deg_px, p.wobble_deg, p.wobble_px, p.noise_deg,
                           p.noise_spread, _noise_multiplier(rng, labels, p))
    phase = np.where(ra, FCC, BCC).astype(np.int8)
    iq_base = np.concatenate([rng.normal(p.iq_grain[0], p.iq_grain[1], n_lath),
                              rng.normal(p.iq_fcc, p.iq_grain[1], n_pag)])[labels]
    iq, phase = _iq_and_noise(rng, labels, phase, p, iq_base)
    q[phase == NOISE] = [1.0, 0, 0, 0]
    return OrientationMap(quat_normalize(q), phase, iq, 1.0, "synthetic bainite")


def synthesize_map(phase: str, rng: np.random.Generator, params=None,
                   shape: tuple[int, int] | None = None) -> OrientationMap:
    """One synthetic orientation map of ``phase`` ("ferrite" or "bainite"); ``shape`` (H, W) overrides the
    square ``params.map_px``."""
    p = params_for(phase) if params is None else params
    if phase == "ferrite":
        return synthesize_ferrite(rng, p, shape)
    if phase == "bainite":
        return synthesize_bainite(rng, p, shape)
    raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")


def _map_rng(phase: str, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), PHASES.index(phase), int(index)]))


def _patches_of_map(args) -> np.ndarray:
    phase, seed, index, params, size, map_shapes = args
    rng = _map_rng(phase, seed, index)
    if map_shapes:
        # edge statistics of a real dataset: a map of one of its source sizes (drawn by their patch counts),
        # every centre grain taken, windows past the edge padded exactly as in an import
        weights = np.array([wt for _, wt in map_shapes], float)
        shape = map_shapes[int(rng.choice(len(map_shapes), p=weights / weights.sum()))][0]
        omap = synthesize_map(phase, rng, params, shape)
        return extract_patches(omap, size=size, phases=(BCC,), interior_only=False,
                               max_patches=params.patches_per_map, rng=rng)
    omap = synthesize_map(phase, rng, params)
    return extract_patches(omap, size=size, phases=(BCC,), interior_only=True,
                           max_patches=params.patches_per_map, rng=rng)


def map_shapes_like(path: str) -> list[tuple[tuple[int, int], float]]:
    """((H, W), patch count) of every source map of an imported dataset file (its ``meta["maps"]``)."""
    from .dataset import load_dataset

    maps = load_dataset(path).meta.get("maps") or []
    out = [((int(m["shape"][0]), int(m["shape"][1])), float(m.get("patches", 1))) for m in maps
           if m.get("shape") and m.get("patches", 1) > 0]
    if not out:
        raise ValueError(f"{path}: the dataset records no source map sizes (make it with `qgan data import`)")
    return out


def synth_patches(phase: str, count: int, seed: int = 0, params=None, workers: int | None = None,
                  size: int = 60, progress: bool = False,
                  map_shapes: list[tuple[tuple[int, int], float]] | None = None) -> np.ndarray:
    """``count`` synthetic patches uint8 (count, 5, size, size) of ``phase``; deterministic by ``seed``.

    Maps ``0, 1, 2, ...`` are generated from ``SeedSequence([seed, phase, map index])`` and their patches
    concatenated in map order until ``count`` are reached, so the result does not depend on ``workers``
    (processes, forked; default ``$QGAN_DATA_WORKERS`` or 1, so library callers such as a Ray trial never
    fork unless asked; ``qgan data synth`` uses every CPU for large counts).

    ``map_shapes``: ((H, W), weight) pairs (see :func:`map_shapes_like`): each map is made at one of these
    sizes and gives all its centre grains with edge padding, as an import of real maps of those sizes does;
    default: square ``params.map_px`` maps, interior windows only.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if int(count) != count or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    count = int(count)
    params = params_for(phase) if params is None else params
    if map_shapes:
        map_shapes = [((int(h), int(w)), float(wt)) for (h, w), wt in map_shapes]
        if any(max(sh) < size for sh, _ in map_shapes) or any(min(sh) < 1 for sh, _ in map_shapes):
            raise ValueError(f"patch size {size} is larger than a map size in map_shapes {map_shapes}")
    elif params.map_px < size:
        raise ValueError(f"patch size {size} is larger than the synthetic map ({params.map_px} px)")
    if workers is None:
        env = os.environ.get("QGAN_DATA_WORKERS")
        workers = int(env) if env else 1
    out = np.empty((count, 5, size, size), np.uint8)
    filled = 0
    index = 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count, desc=f"synth {phase}", unit="patch")
    pool = None
    try:
        if workers > 1 and count > 0:
            import multiprocessing as mp
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            pool = ctx.Pool(workers)
        while filled < count:
            est = max(1, int(np.ceil((count - filled) / max(params.patches_per_map * 0.8, 1))))
            batch = min(est, 4 * max(workers, 1)) if pool else 1
            jobs = [(phase, seed, index + k, params, size, map_shapes) for k in range(batch)]
            results = pool.map(_patches_of_map, jobs) if pool else [_patches_of_map(j) for j in jobs]
            index += batch
            for r in results:
                take = min(len(r), count - filled)
                out[filled:filled + take] = r[:take]
                filled += take
                if bar:
                    bar.update(take)
                if filled >= count:
                    break
            if index > 100000:
                raise RuntimeError("synthetic generator produced no patches")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar:
            bar.close()
    return out
