"""Figures (PNG and PDF, matplotlib Agg): MMD curves per setting, RI against n, prior diagnostics, montages.

* `mmd_<name>` (`figure_stems`, e.g. `mmd_ferrite_n8_t512_u10_qcbm`): one per arm-A setting (with every
  partner it pairs with) and per partner group without any arm-A setting. Top: per arm the mean over seeds per
  epoch (thin), its rolling mean over min(100, E) epochs (paper Fig. 3; each arm its own colour, line style,
  width and marker, the widest underneath), the band between the seeds' rolling curves, the mean of the last
  min(500, E) epochs (dashed, over the epochs it averages) and the real-vs-real floor (dotted grey). Below:
  the running RI of each comparison, ending in its Eq. 10 value and CI. Legends outside the axes.
* `ri_vs_n`: Eq. 10 in % against n, one row of panels per comparison and one panel per phase, one series per
  training size (and any other field that varies), CI error bars (open marker: tie), the y-axis fitted to
  the data; for qcbm_vs_bernoulli the paper's range shaded where it overlaps, else named at the edge.
* `prior_<phase>`: the trained priors' TV from uniform, entropy and total correlation against epoch (mean over
  seeds at the update epochs), one line per qcbm / product setting, the legend outside the panels.
* `samples_<name>`: real vs each arm's generated images, the five channels labelled.
RI is printed with `analysis.fmt` (to the precision of its CI).
"""
from __future__ import annotations

import math
import os
import re
import textwrap
import warnings
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import schema  # noqa: E402
from .fmt import fmt_ri, fmt_ri_ci  # noqa: E402

COLORS = {"bernoulli": "#1f77b4", "product": "#2ca02c", "qcbm": "#d62728"}
NAMES = schema.ARM_NAMES
#: Colour maps of the trained arms' settings in the prior figure.
PRIOR_CMAPS = {"qcbm": "Reds", "product": "Greens"}
#: Width (inches) kept right of the prior panels for their legend.
LEGEND_IN = 3.4
PRIOR_PANELS = (("prior_tv", "TV distance from uniform"), ("prior_entropy_bits", "entropy (bits)"),
                ("prior_total_correlation_bits", "total correlation (bits)"))
#: Most settings listed in the prior figure's legend.
PRIOR_LEGEND_MAX = 30
#: y-axis label of each prior panel (its title names the quantity).
PRIOR_UNITS = {"prior_tv": "TV (0 = uniform)", "prior_entropy_bits": "bits (n = uniform)",
               "prior_total_correlation_bits": "bits (0 = independent bits)"}
#: The paper's reported RI ranges (spec §7), as fractions.
PAPER_RANGE = {"ferrite": (0.22, 0.99), "bainite": (-0.45, 1.50)}


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Save `fig` as stem.png (120 dpi) and stem.pdf, each atomically; close it; return the paths."""
    paths = []
    fig.set_layout_engine(None)  # layout was fixed once by the caller; no per-format re-layout
    for ext in ("png", "pdf"):
        path = stem.with_name(f"{stem.name}.{ext}")   # not with_suffix: 'lr0.05' is part of the name
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


#: Per arm: line style, width and marker of its MMD curve. Widest first, so a curve another one lies on
#: stays visible around it (Bernoulli wide and pale, product dashed, QCBM thin on top).
ARM_STYLE = {"bernoulli": {"ls": "-", "lw": 4.5, "marker": "o", "alpha": 0.55, "z": 2},
             "product": {"ls": (0, (5, 2)), "lw": 2.4, "marker": "s", "alpha": 0.95, "z": 3},
             "qcbm": {"ls": "-", "lw": 1.3, "marker": "^", "alpha": 1.0, "z": 4}}
#: Colours, markers and line styles of the series of the RI figure (cycled).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<")
SERIES_LINES = ("-", "--", "-.", ":")
#: Most points of one RI panel that get their value written next to them.
MAX_POINT_LABELS = 12


def _nanmean(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(m, axis=0)


def _rolling(y: np.ndarray, w: int) -> np.ndarray:
    return pd.Series(y).rolling(w, min_periods=1).mean().to_numpy()


def running_ri(epochs: pd.DataFrame, ids_a: list[str], ids_b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, RI per epoch) of two sets of trials: rolling mean (min(100, E) epochs) of each side's
    mean-over-seeds MMD, then (MMD_B - MMD_A) / MMD_A. At the last epoch this is Eq. 10 when every seed
    evaluated the same epochs."""
    ea, ma, _ = _curves(epochs, ids_a)
    eb, mb, _ = _curves(epochs, ids_b)
    e = np.intersect1d(ea, eb)
    if not len(e):
        return e, np.array([])
    w = max(1, min(schema.LAST_SHORT, int(e.max())))
    a = pd.Series(_nanmean(ma), index=ea).reindex(e).to_numpy()
    b = pd.Series(_nanmean(mb), index=eb).reindex(e).to_numpy()
    ra, rb = _rolling(a, w), _rolling(b, w)
    with np.errstate(all="ignore"):
        return e, np.where(ra > 0, (rb - ra) / ra, np.nan)


def _limits(values: list[float], zero_within: float = 3.0) -> tuple[float, float]:
    """y-limits that show `values` (padded 12 %); 0 is included when it lies within `zero_within` data spans
    (so the data still fill at least a quarter of the axis)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if not len(v):
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else max(abs(hi), 1e-6) * 0.5
    if lo - zero_within * span <= 0 <= hi + zero_within * span:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        span = hi - lo if hi > lo else span
    return lo - 0.12 * span, hi + 0.12 * span


def mmd_figure(title: str, sides: dict[str, dict[str, Any]], floor: float,
               running: list[dict[str, Any]] | None = None, confidence: float = 0.95) -> plt.Figure:
    """MMD against epoch per arm, and below it the running RI of each comparison with its Eq. 10 value.

    sides[model] = {"epoch": (E,), "mmd": (T, E), "last500": float, "n": int}; running = [{"label",
    "arm_b", "epoch": (E,), "ri": (E,), "table": (ri, low, high)}] (fractions)."""
    running = [r for r in (running or []) if len(r["epoch"]) and np.isfinite(r["ri"]).any()]
    if running:
        fig, (ax, axr) = plt.subplots(2, 1, figsize=(10.0, 6.4), sharex=True, height_ratios=(3, 1.6))
    else:
        fig, ax = plt.subplots(figsize=(10.0, 4.4))
        axr = None
    e_max = 1
    for k, model in enumerate(m for m in schema.MODELS if m in sides):
        s = sides[model]
        e, m = s["epoch"], s["mmd"]
        if m.size == 0:
            continue
        c, st = COLORS[model], ARM_STYLE[model]
        e_max = max(e_max, int(e.max()))
        mean = _nanmean(m)
        w = max(1, min(schema.LAST_SHORT, int(e.max())))
        roll_mean = _rolling(mean, w)
        rolls = pd.DataFrame(m.T).rolling(w, min_periods=1).mean().to_numpy().T
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(rolls, axis=0), np.nanmax(rolls, axis=0)
        ok = np.isfinite(mean)  # epochs without an evaluation (eval_every > 1) are skipped, not gaps
        ax.plot(e[ok], mean[ok], color=c, lw=0.6, alpha=0.3, zorder=1)
        marks = np.unique(np.linspace(len(e) * (0.04 + 0.05 * k), len(e) - 1, 6).astype(int))
        seeds = f"{s['n']} seed{'s' if s['n'] != 1 else ''}"
        ax.plot(e, roll_mean, color=c, ls=st["ls"], lw=st["lw"], alpha=st["alpha"], zorder=st["z"],
                marker=st["marker"], ms=6, markevery=list(marks), mec="white", mew=0.6,
                label=f"{NAMES[model]}: mean of {seeds}, rolling {w}" + (f" (fewer before epoch {w})"
                                                                          if int(e.max()) > w else ""))
        if s["n"] > 1:
            ax.fill_between(e, lo, hi, color=c, alpha=0.10, lw=0, zorder=0)
        if math.isfinite(s["last500"]):
            last = min(schema.LAST_LONG, int(e.max()))
            ax.hlines(s["last500"], int(e.max()) - last + 1, int(e.max()), color=c, ls=(0, (2, 2)), lw=1.1,
                      zorder=st["z"], label=f"{NAMES[model]}: mean of the last {last} epochs {s['last500']:.4g}")
    if math.isfinite(floor):
        ax.axhline(floor, color="0.35", ls=":", lw=1.2, label=f"real-vs-real floor {floor:.4g}")
    ax.plot([], [], color="0.5", lw=0.6, alpha=0.5, label="thin: mean over seeds per epoch (not rolled)")
    ax.fill_between([], [], [], color="0.5", alpha=0.2, lw=0, label="shaded: range of the seeds' rolling curves")
    ax.set_ylabel("MMD (Eq. 9)")
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    if axr is None:
        ax.set_xlabel("epoch")
        fig.tight_layout()
        return fig
    vals: list[float] = [0.0]
    level = int(round(100 * confidence))
    for k, r in enumerate(running):
        c, st = COLORS[r["arm_b"]], ARM_STYLE[r["arm_b"]]
        e, y = np.asarray(r["epoch"]), 100 * np.asarray(r["ri"], dtype=float)
        axr.plot(e, y, color=c, ls=st["ls"], lw=1.6, label=f"{r['label']}: running RI")
        vals += list(y[e >= 0.25 * e.max()])
        ri, low, high = r["table"]
        x = e_max * (1.02 + 0.025 * k)
        lo_err = 100 * (ri - low) if np.isfinite(low) else 0.0
        hi_err = 100 * (high - ri) if np.isfinite(high) else 0.0
        axr.errorbar([x], [100 * ri], yerr=[[max(lo_err, 0)], [max(hi_err, 0)]], color=c, marker="D", ms=5,
                     capsize=3, lw=1.2, label=f"{r['label']}: Eq. 10 {fmt_ri_ci(ri, low, high)}")
        vals += [100 * v for v in (ri, low, high) if np.isfinite(v)]
    axr.axhline(0, color="k", lw=0.8)
    axr.set_ylim(*_limits(vals))
    axr.set_xlim(right=e_max * (1.05 + 0.025 * len(running)))
    axr.set_xlabel("epoch")
    axr.set_ylabel("RI (%)")
    axr.set_title(f"running RI = (MMD_B − MMD_A) / MMD_A of the rolling means, > 0: first arm better; "
                  f"at the right: Eq. 10 with its {level} % CI", fontsize=8, loc="left")
    axr.grid(alpha=0.3)
    axr.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return fig


def ri_figure(improvement: pd.DataFrame, all_series: list[str], confidence: float = 0.95) -> plt.Figure | None:
    """Eq. 10 (%) against n: one row of panels per comparison, one panel per phase; one series per
    combination of the fields of `all_series` that vary within the panel. The y-axis fits the data; the
    paper's range is shaded where it overlaps and named at the edge where it does not. None if nothing is
    paired."""
    ok = (improvement["pair_status"] == "paired") & np.isfinite(improvement["ri"].astype(float))
    paired = improvement[ok.to_numpy(dtype=bool)]
    if paired.empty or "n" not in paired:
        return None
    comps = [c for c in schema.COMPARISONS if (paired["comparison"].astype(str) == c[0]).any()]
    phases = sorted({str(p) for p in paired["phase"].astype(object)}) if "phase" in paired else ["all"]
    fig, axes = plt.subplots(len(comps), len(phases), figsize=(5.6 * len(phases), 4.6 * len(comps) + 0.5),
                             squeeze=False)
    level = int(round(100 * confidence))
    for row_axes, (cmp_name, arm_a, arm_b) in zip(axes, comps):
        cp = paired[paired["comparison"].astype(str) == cmp_name]
        for ax, phase in zip(row_axes, phases):
            sub = cp[cp["phase"].astype(object) == phase] if "phase" in cp else cp
            ax.set_title(f"{phase}: {NAMES[arm_a]} vs {NAMES[arm_b]}", fontsize=10)
            if sub.empty:
                ax.text(0.5, 0.5, "no paired setting", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            series_fields = [f for f in all_series if f in sub.columns and sub[f].astype(str).nunique() > 1]
            groups = list(sub.groupby(series_fields, sort=True, dropna=False)) if series_fields else [((), sub)]
            ns = sorted({int(v) for v in sub["n"]})
            step = min(np.diff(ns)) if len(ns) > 1 else 1.0
            width = 0.16 * step
            vals: list[float] = []
            label_points = len(groups) == 1 and len(sub) <= MAX_POINT_LABELS   # several series: labels collide
            for i, (key, g) in enumerate(groups):
                key = key if isinstance(key, tuple) else (key,)
                color = SERIES_COLORS[i % len(SERIES_COLORS)]
                marker = SERIES_MARKERS[i % len(SERIES_MARKERS)]
                off = (i - (len(groups) - 1) / 2) * (width / (len(groups) - 1) if len(groups) > 1 else 0.0)
                g = g.sort_values("n")
                x = g["n"].to_numpy(dtype=float) + off
                y = 100 * g["ri"].to_numpy(dtype=float)
                lo = 100 * g["ri_ci_low"].to_numpy(dtype=float)
                hi = 100 * g["ri_ci_high"].to_numpy(dtype=float)
                vals += [*y, *lo[np.isfinite(lo)], *hi[np.isfinite(hi)]]
                yerr = np.vstack([np.where(np.isfinite(lo), y - lo, 0), np.where(np.isfinite(hi), hi - y, 0)])
                label = ", ".join(f"{f}={v}" for f, v in zip(series_fields, key)) or "RI per n"
                ax.errorbar(x, y, yerr=np.clip(yerr, 0, None), color=color, ls=SERIES_LINES[i % len(SERIES_LINES)],
                            lw=1.2, capsize=3, marker=marker, ms=6, label=label, zorder=3)
                tie = ~((lo > 0) | (hi < 0))
                ax.plot(x[tie], y[tie], ls="none", marker=marker, ms=6, mfc="white", mec=color, zorder=4)
                if label_points:
                    for xi, yi, (_, r) in zip(x, y, g.iterrows()):
                        ax.annotate(fmt_ri(r["ri"], r["ri_ci_low"], r["ri_ci_high"]), (xi, yi), xytext=(6, 2),
                                    textcoords="offset points", fontsize=7, color=color)
            ylo, yhi = _limits(vals)
            if ylo <= 0 <= yhi:
                ax.axhline(0, color="k", lw=0.8, zorder=2)
            else:
                ax.annotate(f"0 % is {'below' if ylo > 0 else 'above'} this range",
                            (0.99, 0.02 if ylo > 0 else 0.98), xycoords="axes fraction", ha="right",
                            va="bottom" if ylo > 0 else "top", fontsize=7, color="0.3")
            if cmp_name == "qcbm_vs_bernoulli" and phase in PAPER_RANGE:
                a, b = (100 * v for v in PAPER_RANGE[phase])
                text = f"paper's range {a:+.0f} … {b:+.0f} %"
                if a < yhi and b > ylo:
                    ax.axhspan(max(a, ylo), min(b, yhi), facecolor="0.6", alpha=0.15, hatch="///", edgecolor="0.75",
                               lw=0, label=text, zorder=0)
                else:
                    up = a >= yhi
                    ax.annotate(f"{text}: {'above' if up else 'below'} the axes {'↑' if up else '↓'}",
                                (0.01, 0.98 if up else 0.02), xycoords="axes fraction", ha="left",
                                va="top" if up else "bottom", fontsize=7, color="0.3", style="italic")
            ax.set_ylim(ylo, yhi)
            ax.set_xticks(ns)
            if len(ns) == 1:
                ax.set_xlim(ns[0] - 1, ns[0] + 1)
            else:
                ax.set_xlim(ns[0] - 0.5 * step, ns[-1] + 0.5 * step)
            ax.set_xlabel("n (qubits = latent size)")
            ax.set_ylabel("RI (%), Eq. 10")
            ax.grid(alpha=0.3)
            if len(groups) > 1 or ax.get_legend_handles_labels()[1][len(groups):]:
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.text(0.01, 0.005, f"RI = (MMD_B − MMD_A) / MMD_A, MMD over the last 100 epochs (Eq. 10); > 0: the first arm "
             f"is better. Error bars: {level} % bootstrap CI over paired seeds. Filled marker: the CI excludes 0 "
             "(win or loss); open: tie. Values to the precision of their CI.", fontsize=7, color="0.25",
             wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def prior_figure(phase: str, lines: list[dict[str, Any]]) -> plt.Figure | None:
    """Prior diagnostics of one phase against epoch. lines: [{"model", "label", "epoch": (E,), col: (E,)}]
    with the mean over seeds at each recorded epoch. None when no line has a finite value."""
    lines = [ln for ln in lines if any(np.isfinite(ln[c]).any() for c, _ in PRIOR_PANELS)]
    if not lines:
        return None
    height = max(3.6, 0.15 * min(len(lines), PRIOR_LEGEND_MAX) + 1.0)   # room for the legend beside the panels
    fig, axes = plt.subplots(1, len(PRIOR_PANELS), figsize=(4.0 * len(PRIOR_PANELS) + LEGEND_IN, height),
                             squeeze=False)
    per_arm: dict[str, int] = {}
    for ln in lines:
        per_arm[ln["model"]] = per_arm.get(ln["model"], 0) + 1
    seen: dict[str, int] = {}
    handles = []
    for ln in lines:
        m = ln["model"]
        i = seen.get(m, 0)
        seen[m] = i + 1
        cmap = plt.get_cmap(PRIOR_CMAPS.get(m, "Greys"))
        color = cmap(0.85 - 0.5 * (i / max(1, per_arm[m] - 1))) if per_arm[m] > 1 else COLORS.get(m, "k")
        ls = "-" if m == "qcbm" else "--"
        for ax, (col, _) in zip(axes[0], PRIOR_PANELS):
            y = np.asarray(ln[col], dtype=float)
            ok = np.isfinite(y)
            h, = ax.plot(np.asarray(ln["epoch"])[ok], y[ok], color=color, ls=ls, marker="o", ms=3, lw=1.3,
                         label=f"{NAMES.get(m, m)}: {ln['label']} ({ln['seeds']} seed{'s' if ln['seeds'] != 1 else ''})")
        handles.append(h)
    for ax, (col, name) in zip(axes[0], PRIOR_PANELS):
        ax.set_xlabel("epoch")
        ax.set_ylabel(PRIOR_UNITS.get(col, name))
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    shown = handles[:PRIOR_LEGEND_MAX]
    more = len(handles) - len(shown)
    fig.suptitle(f"{phase}: prior diagnostics at the update epochs (QCBM solid, product dashed)", fontsize=9)
    width = fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_IN / width, 1))
    fig.legend(shown, [textwrap.fill(h.get_label(), 48) for h in shown], fontsize=7, loc="center left",
               bbox_to_anchor=(1 - (LEGEND_IN - 0.05) / width, 0.5), frameon=False,
               title=f"setting (mean over seeds){f'; {more} more not listed' if more else ''}", title_fontsize=7)
    return fig


def prior_lines(trials: pd.DataFrame, epochs: pd.DataFrame, labels: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """{phase: prior_figure lines}: per qcbm / product setting (usable trials), the mean over seeds per epoch
    of each prior diagnostic at the epochs where one was recorded."""
    cols = [c for c, _ in PRIOR_PANELS]
    if not all(c in epochs.columns for c in cols) or "model" not in trials:
        return {}
    usable = trials[trials["usable"] & trials["model"].astype(object).isin(list(schema.TRAINED_MODELS)).to_numpy(bool)]
    out: dict[str, list[dict[str, Any]]] = {}
    order = {m: i for i, m in enumerate(schema.MODELS)}
    groups = sorted(usable.groupby("setting_id", sort=False),
                    key=lambda kv: (order.get(str(kv[1]["model"].iloc[0]), 9), labels.get(str(kv[0]), str(kv[0]))))
    for sid, g in groups:
        ep = epochs[epochs["trial_id"].isin(g["trial_id"].astype(str).tolist())]
        rec = ep[ep[cols].notna().any(axis=1)]
        if rec.empty:
            continue
        mean = rec.groupby("epoch", sort=True)[cols].mean()
        phase = str(g["phase"].iloc[0]) if "phase" in g else "all"
        line = {"model": str(g["model"].iloc[0]), "label": labels.get(str(sid), str(sid)), "seeds": len(g),
                "epoch": mean.index.to_numpy()}
        line.update({c: mean[c].to_numpy(dtype=float) for c in cols})
        out.setdefault(phase, []).append(line)
    return out


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


def figure_units(improvement: pd.DataFrame) -> list[dict[str, Any]]:
    """One unit per MMD figure: each arm-A setting with the partners of every comparison it is arm A of, and
    each partner group that has no arm-A setting (keyed by its setting id). -> [{setting_id, phase, label,
    arm (the setting's own arm), cfg (its config fields that arm reads), arms: {model: [trial ids]},
    ri: [{comparison, arm_a, arm_b, ri, low, high, seeds, ids_a, ids_b}], status, seeds}] in improvement
    order."""
    fixed = set(schema.fixed_columns("improvement.parquet")) | {schema.MODEL_FIELD}
    cfg_cols = [c for c in improvement.columns if c not in fixed]
    units: dict[str, dict[str, Any]] = {}
    for _, r in improvement.iterrows():
        sid = str(r["setting_id"])
        arm_a, arm_b = str(r["arm_a"]), str(r["arm_b"])
        alone = r["pair_status"] == f"no_{arm_a}"
        arm = arm_b if alone else arm_a
        if sid not in units:
            skip = set(schema.ignored_fields(arm))
            cfg = {c: r[c] for c in cfg_cols if c not in skip and _present(r[c])}
            units[sid] = {"setting_id": sid, "phase": str(r.get("phase", "all")), "label": r["label"], "arm": arm,
                          "cfg": cfg, "arms": {}, "ri": [], "status": [], "seeds": []}
        u = units[sid]
        parts = [(arm_b, r["trial_ids_b"])] if alone else [(arm_a, r["trial_ids_a"]), (arm_b, r["trial_ids_b"])]
        for m, ids in parts:
            have = u["arms"].setdefault(m, [])
            have += [str(x) for x in (ids if ids is not None else []) if str(x) not in have]
        if r["pair_status"] == "paired" and np.isfinite(r["ri"]):
            u["ri"].append({"comparison": str(r["comparison"]), "arm_a": arm_a, "arm_b": arm_b, "ri": float(r["ri"]),
                            "low": float(r["ri_ci_low"]), "high": float(r["ri_ci_high"]),
                            "seeds": [int(x) for x in r["seeds"]], "ids_a": [str(x) for x in r["trial_ids_a"]],
                            "ids_b": [str(x) for x in r["trial_ids_b"]]})
            u["seeds"] = sorted(set(u["seeds"]) | {int(x) for x in r["seeds"]})
        else:
            u["status"].append(str(r["pair_status"]))
    return list(units.values())


def _present(v: Any) -> bool:
    """A config cell that holds a value (not None / NA / NaN)."""
    if v is None or v is pd.NA:
        return False
    return not (isinstance(v, (float, np.floating)) and math.isnan(v))


#: Short names of config fields in figure file names (others: the field name, '_' -> '-').
NAME_ABBR = {"train_size": "t", "update_every": "u", "epochs": "e", "layers": "l", "qcbm_lr": "lr",
             "qcbm_optimizer": "opt", "connectivity": "conn", "backend": "be", "batch_size": "bs", "width": "w",
             "fd_eps": "eps", "qcbm_epochs": "qe", "latent_pool": "pool", "qcbm_samples": "shots",
             "theta_init": "init", "theta_init_scale": "sigma", "qcbm_step": "step", "eval_size": "evals"}
#: Fields always named (when the unit's arm reads them), in this order after the phase.
NAME_FIELDS = ("n", "train_size", "update_every")
MAX_STEM = 120


_NUMBER = re.compile(r"[+-]?[0-9][0-9a-z.+-]*")


def _name_value(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    text = re.sub(r"[^a-z0-9.+-]+", "-", str(v).lower())
    return (text if _NUMBER.fullmatch(text) else text.strip("-.")) or "x"


def _token(field: str, v: Any) -> str:
    """'n8', 't512', 'lr0.05', 'opt-spsa': the field's short name and its value, filesystem-safe."""
    key = NAME_ABBR.get(field, field.replace("_", "-").lower())
    val = _name_value(v)
    return f"{key}{val}" if _NUMBER.fullmatch(val) else f"{key}-{val}"


def figure_stems(units: list[dict[str, Any]]) -> dict[str, str]:
    """{setting_id: 'ferrite_n8_t512_u10_qcbm'}: the phase, n, training size and update period (where the arm
    reads it), any other field that tells apart settings which would otherwise share a name, and the arm.
    Names are lower case, [a-z0-9._+-] only, unique even on case-insensitive file systems; a setting id
    suffix is added only if nothing else tells two apart, and to names longer than MAX_STEM."""
    base: dict[str, list[str]] = {}
    for u in units:
        toks = [_name_value(u["phase"])] + [_token(f, u["cfg"][f]) for f in NAME_FIELDS if f in u["cfg"]]
        u["_base"] = "_".join(toks) + "|" + u["arm"]
        base.setdefault(u["_base"], []).append(u["setting_id"])
    by_id = {u["setting_id"]: u for u in units}
    stems: dict[str, str] = {}
    for key, sids in base.items():
        group = [by_id[s] for s in sids]
        fields: list[str] = []
        for g in group:
            fields += [f for f in g["cfg"] if f not in NAME_FIELDS and f != "phase" and f not in fields]
        differ = [f for f in fields if len({repr(_name_value(g["cfg"].get(f, "absent"))) for g in group}) > 1]
        head, arm = key.split("|")
        for g in group:
            extra = [_token(f, g["cfg"].get(f, "absent")) for f in differ]
            stem = "_".join([head, *extra, arm])
            if len(stem) > MAX_STEM:
                keep = MAX_STEM - len(arm) - 14
                stem = "_".join([stem[:keep].rstrip("_-."), g["setting_id"][:12], arm])
            stems[g["setting_id"]] = stem
    seen: dict[str, list[str]] = {}
    for sid, stem in stems.items():
        seen.setdefault(stem.lower(), []).append(sid)
    for dup in (v for v in seen.values() if len(v) > 1):
        for sid in dup:
            stems[sid] = f"{stems[sid]}_{sid[:12]}"
    for u in units:
        u.pop("_base", None)
    return stems


#: Words for the fields every figure title names.
TITLE_FIELDS = (("n", "n = {}"), ("train_size", "{} training images"), ("update_every", "prior update every {} epochs"),
                ("epochs", "{} epochs"))


def setting_title(u: dict[str, Any]) -> str:
    """'ferrite, QCBM, n = 8, 512 training images, prior update every 10 epochs, 150 epochs' and the label's
    other fields ('eta=0.1')."""
    parts = [u["phase"], NAMES.get(u["arm"], u["arm"])]
    parts += [fmt.format(_name_value(u["cfg"][f])) for f, fmt in TITLE_FIELDS if f in u["cfg"]]
    skip = ("n=", "T=", "upd=", "E=")
    extra = [t for t in str(u["label"]).split()[2:] if not t.startswith(skip)]
    return ", ".join(parts + extra)


def make_figures(trials: pd.DataFrame, epochs: pd.DataFrame, improvement: pd.DataFrame, run_dir: Path,
                 out_dir: Path, series_fields: list[str], montage_samples: int = 4,
                 progress: Callable[[Any], Any] | None = None,
                 confidence: float = 0.95) -> tuple[dict[str, list[Path]], list[str]]:
    """Write every figure under out_dir/figures. Returns ({kind: [paths]}, notes)."""
    fdir = out_dir / "figures"
    fdir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"mmd": [], "ri": [], "prior": [], "samples": []}
    notes: list[str] = []
    usable = trials[trials["usable"]]

    fig = ri_figure(improvement, series_fields, confidence)
    if fig is not None:
        written["ri"] += save_figure(fig, fdir / "ri_vs_n")

    labels: dict[str, str] = {}
    for _, r in improvement.iterrows():
        labels.setdefault(str(r["setting_id"]), str(r["label"]))
    for phase, lines in sorted(prior_lines(trials, epochs, labels).items()):
        fig = prior_figure(phase, lines)
        if fig is not None:
            written["prior"] += save_figure(fig, fdir / f"prior_{phase}")

    units = figure_units(improvement)
    stems = figure_stems(units)
    it = progress(units) if progress else units
    for u in it:
        sid, phase = u["setting_id"], u["phase"]
        sides: dict[str, dict[str, Any]] = {}
        floors: list[float] = []
        for m in schema.MODELS:
            ids = u["arms"].get(m, [])
            if not ids:
                continue
            e, mm, _ = _curves(epochs, ids)
            sel = usable[usable["trial_id"].isin(ids)]
            sides[m] = {"epoch": e, "mmd": mm, "n": len(ids), "last500": float(sel["mmd_last500"].mean())}
            floors += sel["mmd_floor"].tolist()
        if sides:
            floors = [f for f in floors if np.isfinite(f)]
            level = int(round(100 * confidence))
            if u["ri"]:
                extra = "RI (Eq. 10, " + f"{level} % CI): " + "; ".join(
                    f"{NAMES[c['arm_a']]} vs {NAMES[c['arm_b']]} {fmt_ri_ci(c['ri'], c['low'], c['high'])}"
                    for c in u["ri"])
            else:
                extra = f"not paired ({', '.join(u['status'])})"
            running = []
            for c in u["ri"]:
                seeds = set(c["seeds"])
                pick = lambda ids: usable[usable["trial_id"].isin(ids) & usable["seed"].isin(seeds)
                                          ]["trial_id"].astype(str).tolist() if "seed" in usable else ids
                e, ri = running_ri(epochs, pick(c["ids_a"]), pick(c["ids_b"]))
                running.append({"label": f"{NAMES[c['arm_a']]} vs {NAMES[c['arm_b']]}", "arm_b": c["arm_b"],
                                "epoch": e, "ri": ri, "table": (c["ri"], c["low"], c["high"])})
            fig = mmd_figure(f"{setting_title(u)}\n{extra}", sides, float(np.mean(floors)) if floors else math.nan,
                             running, confidence)
            written["mmd"] += save_figure(fig, fdir / f"mmd_{stems[sid]}")

        if montage_samples > 0:
            panels: list[tuple[str, np.ndarray]] = []
            real_done = False
            seeds = u["seeds"] or None
            for m in schema.MODELS:
                ids = u["arms"].get(m, [])
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
                fig = montage_figure(f"{setting_title(u)}: real vs generated (uint8 0..255, gray)", panels,
                                     min(montage_samples, min(len(p[1]) for p in panels)))
                written["samples"] += save_figure(fig, fdir / f"samples_{stems[sid]}")
    return written, notes
