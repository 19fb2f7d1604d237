"""Figures (PNG and PDF, matplotlib Agg): MMD curves per setting, RI against n, sample montages.

* `mmd_<phase>_<setting_id>`: per model the mean over seeds per epoch (thin), its rolling mean over
  min(100, E) epochs (solid; paper Fig. 3), the band between the seeds' rolling curves, the last-500-epoch
  mean (dashed) and the real-vs-real residual floor (dotted grey).
* `ri_vs_n`: Eq. 10 in % against n, one panel per phase, one series per training size (and any other field
  that varies), bootstrap CI error bars, a zero line and the paper's reported range shaded (paper Fig. 4).
* `samples_<phase>_<setting_id>`: real vs Bernoulli vs QCBM generated images, the five channels labelled.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import schema  # noqa: E402

COLORS = {"bernoulli": "#1f77b4", "qcbm": "#d62728"}
NAMES = {"bernoulli": "Bernoulli", "qcbm": "QCBM"}
#: The paper's reported RI ranges (spec §7), as fractions.
PAPER_RANGE = {"ferrite": (0.22, 0.99), "bainite": (-0.45, 1.50)}


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Save `fig` as stem.png (120 dpi) and stem.pdf, each atomically; close it; return the paths."""
    paths = []
    fig.set_layout_engine(None)  # layout was fixed once by the caller; no per-format re-layout
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            fig.savefig(tmp, format=ext, dpi=120)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        paths.append(path)
    plt.close(fig)
    return paths


def _curves(epochs: pd.DataFrame, trial_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (epoch (E,), per-trial MMD (T, E) NaN-padded, per-trial rolling mean (T, E))."""
    ep = epochs[epochs["trial_id"].isin(trial_ids)]
    wide = ep.pivot_table(index="epoch", columns="trial_id", values="mmd", aggfunc="mean", dropna=False)
    wide = wide.sort_index()
    e = wide.index.to_numpy()
    w = max(1, min(schema.LAST_SHORT, int(e.max()) if len(e) else 1))
    roll = wide.rolling(w, min_periods=1).mean()
    return e, wide.to_numpy().T, roll.to_numpy().T


def mmd_figure(title: str, sides: dict[str, dict[str, Any]], floor: float) -> plt.Figure:
    """sides[model] = {"epoch": (E,), "mmd": (T, E), "last500": float, "n": int}. Returns the figure."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for model in ("bernoulli", "qcbm"):
        if model not in sides:
            continue
        s = sides[model]
        e, m = s["epoch"], s["mmd"]
        if m.size == 0:
            continue
        c = COLORS[model]
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(m, axis=0)
                w = max(1, min(schema.LAST_SHORT, int(e.max())))
                roll_mean = pd.Series(mean).rolling(w, min_periods=1).mean().to_numpy()
                rolls = pd.DataFrame(m.T).rolling(w, min_periods=1).mean().to_numpy().T
                lo, hi = np.nanmin(rolls, axis=0), np.nanmax(rolls, axis=0)
        ok = np.isfinite(mean)  # epochs without an evaluation (eval_every > 1) are skipped, not gaps
        ax.plot(e[ok], mean[ok], color=c, lw=0.6, alpha=0.35)
        ax.plot(e, roll_mean, color=c, lw=2.0,
                label=f"{NAMES[model]} (mean of {s['n']} seed{'s' if s['n'] != 1 else ''}, rolling {w})")
        if s["n"] > 1:
            ax.fill_between(e, lo, hi, color=c, alpha=0.12, lw=0)
        if math.isfinite(s["last500"]):
            ax.axhline(s["last500"], color=c, ls="--", lw=1.2,
                       label=f"{NAMES[model]} last-{min(schema.LAST_LONG, int(e.max()))} mean {s['last500']:.4g}")
    if math.isfinite(floor):
        ax.axhline(floor, color="0.4", ls=":", lw=1.2, label=f"real-vs-real floor {floor:.4g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MMD (Eq. 9)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def ri_figure(improvement: pd.DataFrame, all_series: list[str]) -> plt.Figure | None:
    """Eq. 10 (%) against n per phase; one series per combination of the fields of `all_series` that vary
    within the phase. None if nothing is paired."""
    paired = improvement[(improvement["pair_status"] == "paired") & np.isfinite(improvement["ri"].astype(float))]
    if paired.empty or "n" not in paired:
        return None
    phases = sorted({str(p) for p in paired["phase"].astype(object)}) if "phase" in paired else ["all"]
    fig, axes = plt.subplots(1, len(phases), figsize=(5.2 * len(phases), 4.0), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        sub = paired[paired["phase"].astype(object) == phase] if "phase" in paired else paired
        series_fields = [f for f in all_series if f in sub.columns and sub[f].astype(str).nunique() > 1]
        groups = list(sub.groupby(series_fields, sort=True, dropna=False)) if series_fields else [((), sub)]
        ns = sorted({int(v) for v in sub["n"]})
        step = min(np.diff(ns)) if len(ns) > 1 else 1.0
        width = 0.12 * step
        for i, (key, g) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            off = (i - (len(groups) - 1) / 2) * (width / (len(groups) - 1) if len(groups) > 1 else 0.0)
            g = g.sort_values("n")
            x = g["n"].to_numpy(dtype=float) + off
            y = 100 * g["ri"].to_numpy(dtype=float)
            lo = 100 * g["ri_ci_low"].to_numpy(dtype=float)
            hi = 100 * g["ri_ci_high"].to_numpy(dtype=float)
            yerr = np.vstack([np.where(np.isfinite(lo), y - lo, 0), np.where(np.isfinite(hi), hi - y, 0)])
            label = ", ".join(f"{f}={v}" for f, v in zip(series_fields, key)) or "all"
            ax.errorbar(x, y, yerr=np.clip(yerr, 0, None), marker="o", capsize=3, lw=1.2, label=label)
        ax.axhline(0, color="k", lw=0.8)
        if phase in PAPER_RANGE:
            a, b = PAPER_RANGE[phase]
            ax.axhspan(100 * a, 100 * b, color="0.5", alpha=0.08, lw=0, label="paper's reported range")
        ax.set_xticks(ns)
        ax.set_xlabel("n (qubits = latent size)")
        ax.set_ylabel("relative improvement RI (%)  [Eq. 10]")
        ax.set_title(f"{phase}: QCBM vs Bernoulli (error bars: bootstrap CI over seeds)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def load_samples(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
    """samples.npz -> (real, generated) uint8 (k, 5, 60, 60), or a string saying what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "real" not in z or "generated" not in z:
                return f"{path.name} lacks 'real' or 'generated'"
            real, gen = z["real"], z["generated"]
    except Exception as exc:  # corrupt zip, bad header, ...
        return f"{path.name} unreadable: {type(exc).__name__}: {exc}"
    for name, a in (("real", real), ("generated", gen)):
        if a.ndim != 4 or a.shape[1] != len(schema.CHANNELS):
            return f"{path.name}: {name} has shape {a.shape}, expected (k, 5, H, W)"
    return real.astype(np.uint8, copy=False), gen.astype(np.uint8, copy=False)


def _mosaic(imgs: np.ndarray, gap: int = 2) -> np.ndarray:
    """(k, C, H, W) -> (k*(H+gap)-gap, C*(W+gap)-gap) float mosaic, NaN in the gaps."""
    k, c, h, w = imgs.shape
    out = np.full((k * (h + gap) - gap, c * (w + gap) - gap), np.nan)
    view = imgs.astype(float)
    for i in range(k):  # k <= a handful of rows; each row placed as one (C, H, W) block
        row = out[i * (h + gap): i * (h + gap) + h]
        row_view = row.reshape(h, -1)
        for j in range(c):
            row_view[:, j * (w + gap): j * (w + gap) + w] = view[i, j]
    return out


def montage_figure(title: str, panels: list[tuple[str, np.ndarray]], k: int) -> plt.Figure:
    """panels: [(name, uint8 (k', 5, H, W))] shown side by side, k rows each, channel names on top."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 0.75 * k + 1.1), squeeze=False)
    cmap = plt.get_cmap("gray").with_extremes(bad="white")
    for ax, (name, imgs) in zip(axes[0], panels):
        imgs = imgs[:k]
        mos = _mosaic(imgs)
        ax.imshow(mos, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        h, w = imgs.shape[2:]
        ax.set_xticks([(w + 2) * j + w / 2 for j in range(imgs.shape[1])])
        ax.set_xticklabels(schema.CHANNELS, rotation=30, fontsize=6, ha="right")
        ax.xaxis.tick_top()
        ax.set_yticks([(h + 2) * i + h / 2 for i in range(len(imgs))])
        ax.set_yticklabels([f"#{i}" for i in range(len(imgs))], fontsize=6)
        ax.set_xlabel(name, fontsize=9)
        for s in ax.spines.values():
            s.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def make_figures(trials: pd.DataFrame, epochs: pd.DataFrame, improvement: pd.DataFrame, run_dir: Path,
                 out_dir: Path, series_fields: list[str], montage_samples: int = 4,
                 progress: Callable[[Any], Any] | None = None) -> tuple[dict[str, list[Path]], list[str]]:
    """Write every figure under out_dir/figures. Returns ({kind: [paths]}, notes)."""
    fdir = out_dir / "figures"
    fdir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"mmd": [], "ri": [], "samples": []}
    notes: list[str] = []
    usable = trials[trials["usable"]]
    model = usable["model"].astype(object) if "model" in usable else pd.Series(dtype=object)

    fig = ri_figure(improvement, series_fields)
    if fig is not None:
        written["ri"] += save_figure(fig, fdir / "ri_vs_n")

    rows = list(improvement.iterrows())
    it = progress(rows) if progress else rows
    for _, r in it:
        sid, pk = str(r["setting_id"]), str(r["pair_key"])
        phase = str(r.get("phase", "all"))
        if r["pair_status"] == "no_qcbm":
            q_ids: list[str] = []
        else:
            q_ids = usable.loc[(usable["setting_id"] == sid).to_numpy(bool) & (model == "qcbm").to_numpy(bool),
                               "trial_id"].astype(str).tolist()
        b_ids = usable.loc[(usable["pair_key"] == pk).to_numpy(bool) & (model == "bernoulli").to_numpy(bool),
                           "trial_id"].astype(str).tolist()
        sides: dict[str, dict[str, Any]] = {}
        floors = []
        for m, ids in (("bernoulli", b_ids), ("qcbm", q_ids)):
            if not ids:
                continue
            e, mm, _ = _curves(epochs, ids)
            sel = usable[usable["trial_id"].isin(ids)]
            sides[m] = {"epoch": e, "mmd": mm, "n": len(ids), "last500": float(sel["mmd_last500"].mean())}
            floors += sel["mmd_floor"].tolist()
        if sides:
            floors = [f for f in floors if np.isfinite(f)]
            ri = r["ri"]
            extra = f"  RI = {100 * ri:+.1f} %" if np.isfinite(ri) else f"  ({r['pair_status']})"
            fig = mmd_figure(f"{r['label']}{extra}", sides, float(np.mean(floors)) if floors else math.nan)
            written["mmd"] += save_figure(fig, fdir / f"mmd_{phase}_{sid}")

        if montage_samples > 0:
            panels: list[tuple[str, np.ndarray]] = []
            real_done = False
            seeds = list(r["seeds"]) if len(r["seeds"]) else None
            for m, ids in (("qcbm", q_ids), ("bernoulli", b_ids)):
                sel = usable[usable["trial_id"].isin(ids) & usable["has_samples"]]
                if seeds is not None and "seed" in sel:
                    pref = sel[sel["seed"].isin(seeds)]
                    sel = pref if len(pref) else sel
                if sel.empty:
                    continue
                sel = sel.sort_values("seed") if "seed" in sel else sel
                t = sel.iloc[0]
                got = load_samples(run_dir / str(t["path"]) / "samples.npz")
                if isinstance(got, str):
                    notes.append(f"trial {t['trial_id']}: {got}")
                    continue
                real, gen = got
                if not real_done:
                    panels.append((f"real (from {t['trial_id']})", real))
                    real_done = True
                seed_txt = f", seed {t['seed']}" if "seed" in t else ""
                panels.append((f"{NAMES[m]} generated{seed_txt}", gen))
            if panels:
                order = {"r": 0, "B": 1, "Q": 2}
                panels.sort(key=lambda p: order.get(p[0][0], 3))
                fig = montage_figure(f"{r['label']}: real vs generated (uint8 0..255, gray)", panels,
                                     min(montage_samples, min(len(p[1]) for p in panels)))
                written["samples"] += save_figure(fig, fdir / f"samples_{phase}_{sid}")
    return written, notes
