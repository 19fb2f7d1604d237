"""Channel statistics of maps and datasets, and the synthetic-vs-real calibration table.

Statistics of one orientation map (all on the map's own pixel grid):

- ``kam_mean``, ``kam_q50``, ``kam_q90``: KAM channel (deg, 0..3) over indexed pixels
- ``grod_mean``: mean misorientation of a pixel to its grain's mean orientation (deg; grains >= 5 px)
- ``ks_share5``: share of neighbouring BCC|BCC grain pairs (both grains >= 5 px) within 5 deg of a KS
  inter-variant misorientation; ``ks_median``: their median deviation (deg)
- ``noise_frac``: share of unindexed pixels; ``fcc_frac``: share of FCC pixels
- ``grain_px``: median size (px) of BCC grains >= 5 px (laths/blocks in bainite)
- ``iq_contrast``: mean stretched IQ on grain-boundary pixels / mean on interior pixels (>= 2 px inside)
- ``kam_boundary_ratio``: mean KAM on pixels within 1 px of a grain boundary / on pixels >= 3 px inside
- ``noise_clustered``: share of unindexed pixels with an unindexed 4-neighbour (salt noise ~0, clusters ~1)
- ``fcc_interior``: share of FCC pixels whose 4 neighbours are FCC too (thin films ~0.2, blocks ~0.5)
- ``ks_channel_median``: median of the KS channel (deg) over the pixels of BCC grains >= 20 px that have a
  value (the patch-centre grains; separates ferrite from bainite under the default aggregate)
"""
from __future__ import annotations

import csv
import io as _io
import os

import numpy as np
from scipy import ndimage

from .channels import KS_AGGREGATE, KS_MIN_GRAIN_PX, KS_NA_DEG, SCALE, channels, pair_ks_deviation, segment_grains
from .io import BCC, FCC, OrientationMap, load_map
from .orientation import CUBIC_SYMMETRY, quat_multiply

MIN_STAT_GRAIN_PX = KS_MIN_GRAIN_PX
CENTRE_GRAIN_PX = 20  # grains that get a patch (extract_patches default)

STAT_NAMES = ["kam_mean", "kam_q50", "kam_q90", "kam_boundary_ratio", "grod_mean", "ks_share5", "ks_median",
              "ks_channel_median", "noise_frac", "noise_clustered", "fcc_frac", "fcc_interior", "grain_px",
              "iq_contrast"]
FCC_STATS = ("fcc_frac", "fcc_interior")  # not compared for ferrite (no FCC in the real ferrite maps)

# tolerance per statistic: (kind, value); kind "rel" = fraction of the real value, "abs" = absolute units
TOLERANCES = {
    "kam_mean": ("rel", 0.20), "kam_q50": ("rel", 0.20), "kam_q90": ("rel", 0.20), "grod_mean": ("rel", 0.25),
    "ks_share5": ("abs", 0.075), "ks_median": ("abs", 0.6), "ks_channel_median": ("abs", 0.6),
    "noise_frac": ("abs", 0.03), "fcc_frac": ("abs", 0.05),
    "grain_px": ("rel", 0.30), "iq_contrast": ("abs", 0.05),
    "kam_boundary_ratio": ("abs", 0.12), "noise_clustered": ("abs", 0.1), "fcc_interior": ("abs", 0.1),
}
UNITS = {"kam_mean": "deg", "kam_q50": "deg", "kam_q90": "deg", "grod_mean": "deg", "ks_share5": "",
         "ks_median": "deg", "ks_channel_median": "deg", "noise_frac": "", "fcc_frac": "", "grain_px": "px", "iq_contrast": "",
         "kam_boundary_ratio": "", "noise_clustered": "", "fcc_interior": ""}

REAL_MAPS = {
    "ferrite": ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang"],
    "bainite": ["pyebsd_ADI_bcc_fcc_cropped.ang"],
}


def _grod(omap: OrientationMap, grains) -> float:
    lab = grains.labels.ravel()
    ok = lab >= 0
    ok &= grains.size[np.maximum(lab, 0)] >= MIN_STAT_GRAIN_PX
    if not ok.any():
        return float("nan")
    q = omap.quat.reshape(-1, 4)[ok]
    ref = grains.mean_quat[lab[ok]]
    # angle to the closest symmetry equivalent of the grain mean: max_s |(s q) . ref|
    w = np.abs(np.einsum("nkc,nc->nk", quat_multiply(CUBIC_SYMMETRY[None], q[:, None]), ref)).max(axis=1)
    return float(np.degrees(2 * np.arccos(np.clip(w, 0, 1))).mean())


def ks_channel_median(ks: np.ndarray, grains, min_px: int = CENTRE_GRAIN_PX) -> float:
    """Median KS channel value (deg) over the pixels of BCC grains of at least ``min_px`` pixels that have a
    value (``ks``: the channel (H, W))."""
    lab = grains.labels
    ok = lab >= 0
    big = np.zeros(lab.shape, bool)
    big[ok] = (grains.phase[lab[ok]] == BCC) & (grains.size[lab[ok]] >= min_px)
    v = ks[big & (ks < KS_NA_DEG - 0.5)]
    return float(np.median(v)) if v.size else float("nan")


def map_statistics(omap: OrientationMap, ks_aggregate: str = KS_AGGREGATE) -> dict:
    """Channel statistics of one map (see the module docstring)."""
    from .channels import neighbour_angles

    nb = neighbour_angles(omap)
    grains = segment_grains(omap, nb=nb)
    ch = channels(omap, grains, nb, ks_aggregate)
    indexed = omap.phase > 0
    kam = ch[2][indexed]
    dev, kind = pair_ks_deviation(grains)
    big = (grains.size[grains.pairs[:, 0]] >= MIN_STAT_GRAIN_PX) & (grains.size[grains.pairs[:, 1]] >= MIN_STAT_GRAIN_PX) \
        if len(grains.pairs) else np.zeros(0, bool)
    bb = (kind == 1) & big
    bcc_sizes = grains.size[(grains.phase == BCC) & (grains.size >= MIN_STAT_GRAIN_PX)]
    lab = grains.labels
    pad = np.pad(lab, 1, mode="edge")
    boundary = np.zeros(lab.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        boundary |= pad[1 + dy:pad.shape[0] - 1 + dy, 1 + dx:pad.shape[1] - 1 + dx] != lab
    dist = ndimage.distance_transform_edt(~boundary)
    iq = ch[0]
    b_iq = iq[boundary & indexed]
    i_iq = iq[(dist >= 2) & indexed]
    k_near = ch[2][boundary & indexed]
    k_in = ch[2][(dist >= 3) & indexed]
    noise = omap.phase == 0
    fcc = omap.phase == FCC

    def with_4_neighbours(m, all_four):
        pm = np.pad(m, 1, constant_values=False)
        nbs = [pm[1 + dy:pm.shape[0] - 1 + dy, 1 + dx:pm.shape[1] - 1 + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        return (np.logical_and.reduce(nbs) if all_four else np.logical_or.reduce(nbs)) & m
    return {
        "kam_mean": float(kam.mean()) if kam.size else float("nan"),
        "kam_q50": float(np.quantile(kam, 0.5)) if kam.size else float("nan"),
        "kam_q90": float(np.quantile(kam, 0.9)) if kam.size else float("nan"),
        "grod_mean": _grod(omap, grains),
        "ks_share5": float((dev[bb] < 5).mean()) if bb.any() else float("nan"),
        "ks_median": float(np.median(dev[bb])) if bb.any() else float("nan"),
        "ks_channel_median": ks_channel_median(ch[3], grains),
        "noise_frac": float(noise.mean()),
        "noise_clustered": float(with_4_neighbours(noise, False).sum() / noise.sum()) if noise.any() else float("nan"),
        "fcc_frac": float(fcc.mean()),
        "fcc_interior": float(with_4_neighbours(fcc, True).sum() / fcc.sum()) if fcc.any() else float("nan"),
        "kam_boundary_ratio": float(k_near.mean() / k_in.mean()) if k_near.size and k_in.size and k_in.mean() > 0
        else float("nan"),
        "grain_px": float(np.median(bcc_sizes)) if bcc_sizes.size else float("nan"),
        "iq_contrast": float(b_iq.mean() / i_iq.mean()) if b_iq.size and i_iq.size and i_iq.mean() > 0 else float("nan"),
        "n_pairs": int(bb.sum()),
        "n_grains": int(grains.n),
    }


def padding_fraction(images: np.ndarray) -> np.ndarray:
    """Per image, the share of pixels in padding beyond a map edge (float64 (N,)); see :func:`padding_mask`."""
    images = np.asarray(images)
    if len(images) == 0:
        return np.zeros(0)
    return padding_mask(images).mean(axis=(1, 2))


def padding_mask(images: np.ndarray) -> np.ndarray:
    """Pixels (N, H, W) in padding beyond a map edge: the border rows and columns (counted from each side
    inwards) whose every pixel holds the pad values (IQ 0, phase 0, KAM 255, KS 255, mask 0). Exact for
    padding; a whole row of real noise at a window edge would count too."""
    images = np.asarray(images)
    n, _, h, w = images.shape
    pad_value = np.array([0, 0, 255, 255, 0], np.uint8).reshape(1, 5, 1, 1)
    pad = (images == pad_value).all(axis=1)                      # (N, H, W)
    rows, cols = pad.all(axis=2), pad.all(axis=1)                # (N, H), (N, W)

    def run(a):  # length of the leading run of True along axis 1
        return np.cumprod(a, axis=1).sum(axis=1)

    top, bottom = run(rows), run(rows[:, ::-1])
    left, right = run(cols), run(cols[:, ::-1])
    r = np.arange(h)[None, :, None]
    c = np.arange(w)[None, None, :]
    return ((r < top[:, None, None]) | (r >= h - bottom[:, None, None])
            | (c < left[:, None, None]) | (c >= w - right[:, None, None]))


def dataset_statistics(ds) -> dict:
    """Statistics of a dataset's uint8 patches (physical units): per-channel means and KAM/KS summaries."""
    phys = ds.images.astype(np.float32) / SCALE.reshape(1, 5, 1, 1)
    phase = np.rint(phys[:, 1])
    indexed = phase > 0
    kam = phys[:, 2][indexed]
    ks = phys[:, 3]
    ks_av = ks[ks < 19.5]
    mask_px = (phys[:, 4] > 0.5).sum(axis=(1, 2))
    padm = padding_mask(ds.images) if len(ds) else np.zeros((0,) + ds.images.shape[2:], bool)
    pad = padm.mean(axis=(1, 2)) if len(ds) else np.zeros(0)
    out = {"images": len(ds), "labels": ", ".join(f"{k}:{int(v)}" for k, v in zip(*np.unique(ds.labels, return_counts=True)))}
    out.update({
        "iq_mean": float(phys[:, 0].mean()),
        "noise_frac": float((phase == 0).mean()),
        "noise_frac_in_map": float((phase == 0)[~padm].mean()) if (~padm).any() else float("nan"),
        "bcc_frac": float((phase == 1).mean()),
        "fcc_frac": float((phase == 2).mean()),
        "kam_mean": float(kam.mean()) if kam.size else float("nan"),
        "kam_q50": float(np.quantile(kam, 0.5)) if kam.size else float("nan"),
        "kam_q90": float(np.quantile(kam, 0.9)) if kam.size else float("nan"),
        "ks_available_frac": float((ks < 19.5).mean()),
        "ks_median_available": float(np.median(ks_av)) if ks_av.size else float("nan"),
        "central_grain_px_median": float(np.median(mask_px)),
        "pad_frac": float(pad.mean()) if pad.size else float("nan"),
        "padded_images_frac": float((pad > 0).mean()) if pad.size else float("nan"),
    })
    return out


def format_stats(name: str, stats: dict) -> str:
    lines = [f"{name}"]
    for k, v in stats.items():
        lines.append(f"  {k:24s} {v:.4g}" if isinstance(v, float) else f"  {k:24s} {v}")
    return "\n".join(lines)


def shared_ebsd_dir(shared_dir: str | None = None) -> str:
    """Folder of the real maps: argument, ``$QGAN_SHARED_DIR/data/ebsd`` (or ``$QGAN_SHARED_DIR`` if that is the
    ebsd folder itself), or ``<repo>/../shared/data/ebsd``."""
    if shared_dir:
        return shared_dir
    env = os.environ.get("QGAN_SHARED_DIR")
    if env:
        # the shared folder itself (holding data/ebsd) or, accepted too, the ebsd folder
        nested = os.path.join(env, "data", "ebsd")
        return nested if os.path.isdir(nested) or not os.path.isdir(env) else env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(os.path.dirname(repo), "shared", "data", "ebsd")


def synthetic_statistics(phase: str, n_maps: int = 6, seed: int = 0, params=None, progress: bool = False) -> dict:
    """Statistics averaged over ``n_maps`` synthetic maps (the same maps ``synth_patches`` draws first)."""
    from .synthetic import _map_rng, params_for, synthesize_map

    p = params_for(phase) if params is None else params
    per = []
    it = range(n_maps)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"calibrate {phase}", unit="map")
    for i in it:
        per.append(map_statistics(synthesize_map(phase, _map_rng(phase, seed, i), p)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (FCC statistics of ferrite)
        return {k: float(np.nanmean([s[k] for s in per])) for k in STAT_NAMES}


def _within(syn: float, reals: list[float], kind: str, tol: float) -> tuple[bool, float]:
    reals = [r for r in reals if not np.isnan(r)]  # a map without the feature (DC06 has no unindexed pixel)
    if not reals:
        return False, float("nan")
    target = float(np.mean(reals))
    allowed = tol * abs(target) if kind == "rel" else tol
    if np.isnan(syn) or np.isnan(target):
        return False, allowed
    ok = abs(syn - target) <= allowed + 1e-12 or (len(reals) > 1 and min(reals) <= syn <= max(reals))
    return bool(ok), allowed


def calibration_table(shared_dir: str | None = None, n_maps: int = 6, seed: int = 0, progress: bool = False,
                      phases=("ferrite", "bainite"), params: dict | None = None) -> list[dict]:
    """Rows (phase, statistic, synthetic value, real values per map, target, tolerance, pass).

    Target = mean of the real maps of that phase; a row passes when the synthetic value lies within the
    tolerance of the target, or (several real maps) inside the range the real maps span.
    """
    d = shared_ebsd_dir(shared_dir)
    rows = []
    for phase in phases:
        real = {}
        for f in REAL_MAPS[phase]:
            path = os.path.join(d, f)
            real[f] = map_statistics(load_map(path))
        syn = synthetic_statistics(phase, n_maps, seed, None if params is None else params.get(phase), progress)
        for k in STAT_NAMES:
            if phase == "ferrite" and k in FCC_STATS:
                continue
            vals = [real[f][k] for f in real]
            kind, tol = TOLERANCES[k]
            ok, allowed = _within(syn[k], vals, kind, tol)
            rows.append({"phase": phase, "statistic": k, "unit": UNITS[k], "synthetic": syn[k],
                         "real": {f: real[f][k] for f in real}, "target": float(np.nanmean(vals)),
                         "tolerance": f"±{tol:.0%}" if kind == "rel" else f"±{tol:g}", "allowed": allowed,
                         "pass": ok})
    return rows


def format_table(rows: list[dict], markdown: bool = True) -> str:
    """Markdown table of the calibration rows."""
    out = ["| phase | statistic | unit | synthetic | real maps | target (mean) | tolerance | pass |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reals = "; ".join(f"{os.path.splitext(f)[0]}: {v:.3g}" for f, v in r["real"].items())
        out.append(f"| {r['phase']} | {r['statistic']} | {r['unit']} | {r['synthetic']:.3g} | {reals} | "
                   f"{r['target']:.3g} | {r['tolerance']} | {'pass' if r['pass'] else 'FAIL'} |")
    n_ok = sum(r["pass"] for r in rows)
    out.append("")
    out.append(f"{n_ok}/{len(rows)} rows within tolerance")
    return "\n".join(out)


def write_table(rows: list[dict], path: str) -> None:
    """Write the table as Markdown (.md) or CSV (.csv), atomically."""
    from qgan.results import write_text

    if path.lower().endswith(".csv"):
        buf = _io.StringIO()
        w = csv.writer(buf)
        w.writerow(["phase", "statistic", "unit", "synthetic", "real_map", "real_value", "target", "tolerance", "pass"])
        for r in rows:
            for f, v in r["real"].items():
                w.writerow([r["phase"], r["statistic"], r["unit"], f"{r['synthetic']:.6g}", f, f"{v:.6g}",
                            f"{r['target']:.6g}", r["tolerance"], r["pass"]])
        text = buf.getvalue()
    else:
        text = format_table(rows) + "\n"
    write_text(path, text, create_dirs=False)
