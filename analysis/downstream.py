"""The downstream measures of `qgan evaluate` (RUN_DIR/downstream.parquet, schema qgan.results.DOWNSTREAM_SCHEMA):
per-arm tables, paired differences between the arms with bootstrap CIs, a figure and a report section.

A trial's value of a measure is its mean over classifier seeds. Arms are paired as in the MMD comparisons
(analysis.collect.comparison_fields: the setting minus `model` and the fields either arm ignores, seed by seed);
the difference is arm A minus arm B, its CI a bootstrap (BCa) over the paired trials of a phase, pooled over
the settings of that phase. Never imports torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qgan import results

from . import schema
from .collect import comparison_fields
from .stats import bootstrap_mean_ci, wilcoxon_paired

FILE = "downstream.parquet"
#: `model` of the real-vs-real floor rows.
REAL = results.REAL_FLOOR_MODEL
KEYS = list(results.DOWNSTREAM_KEYS)


def read_downstream(run_dir: Path) -> pd.DataFrame | None:
    """RUN_DIR/downstream.parquet, or None when absent; ValueError naming a column it lacks."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    df = pd.read_parquet(path)
    missing = [c for c in results.DOWNSTREAM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a downstream.parquet of qgan evaluate (missing columns {missing})")
    return df


def per_trial(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial and measured quantity: the mean over classifier seeds (column `value`)."""
    by = ["trial_id", "model", "phase", "n", "seed", *KEYS]
    return df.groupby(by, dropna=False, observed=True)["value"].mean().reset_index()


def _higher(measure: str) -> bool:
    return bool(results.DOWNSTREAM_MEASURES.get(measure, ("", True))[1])


def arm_table(df: pd.DataFrame, rng: np.random.Generator, resamples: int, confidence: float) -> pd.DataFrame:
    """downstream_arms.parquet: mean, sd and bootstrap CI over trials per phase, n, arm and quantity."""
    t = per_trial(df)
    rows = []
    for key, g in t.groupby(["phase", "n", "model", *KEYS], dropna=False, observed=True):
        d = dict(zip(["phase", "n", "model", *KEYS], key))
        v = g["value"].to_numpy(np.float64)
        ci = bootstrap_mean_ci(v, rng, resamples, confidence)
        rows.append({**d, "n_trials": len(v), "mean": float(np.mean(v)),
                     "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
                     "ci_low": ci.low, "ci_high": ci.high, "higher_is_better": _higher(d["measure"])})
    return _typed(pd.DataFrame(rows), "downstream_arms.parquet")


def pairs_table(df: pd.DataFrame, configs: dict[str, Any], rng: np.random.Generator, resamples: int,
                confidence: float) -> pd.DataFrame:
    """downstream_pairs.parquet: per comparison, phase and quantity the mean paired difference A - B over the
    paired trials, its bootstrap CI, the Wilcoxon p and which arm the CI favours. Augmentation rows: the
    gain only (the real-only classifier is the same for every arm, so `generated` differs exactly as `gain`)."""
    t = per_trial(df)
    t = t[~t["augmentation"].astype(str).isin(("none", "generated"))]  # generated - generated = gain - gain
    wide = t.pivot_table(index="trial_id", columns=KEYS, values="value", aggfunc="first")
    info = t.drop_duplicates("trial_id").set_index("trial_id")
    rows = []
    for name, a, b in schema.COMPARISONS:
        partners: dict[tuple[str, int], list[str]] = {}
        for tid in info.index[info["model"] == b]:
            cfg = _config(configs, tid)
            if cfg is not None:
                partners.setdefault((results.key_id(comparison_fields(cfg, a, b)), int(cfg["seed"])), []).append(tid)
        pairs = []
        for tid in info.index[info["model"] == a]:
            cfg = _config(configs, tid)
            if cfg is None:
                continue
            match = partners.get((results.key_id(comparison_fields(cfg, a, b)), int(cfg["seed"])), [])
            if match:
                pairs.append((tid, match[0]))
        if not pairs:
            continue
        shared = len({p[1] for p in pairs}) < len(pairs)
        for phase in sorted(info.loc[[p[0] for p in pairs], "phase"].astype(str).unique()):
            ps = [p for p in pairs if info.loc[p[0], "phase"] == phase]
            for col in wide.columns:
                d = dict(zip(KEYS, col))
                diff = np.array([wide.at[x, col] - wide.at[y, col] for x, y in ps], dtype=np.float64)
                diff = diff[np.isfinite(diff)]
                ci = bootstrap_mean_ci(diff, rng, resamples, confidence)
                _, p, pnote = wilcoxon_paired(diff, what="pairs")
                higher = _higher(d["measure"])
                favours = "neither"
                if math.isfinite(ci.low) and (ci.low > 0 or ci.high < 0):
                    favours = a if (ci.low > 0) == higher else b
                note = "; ".join(x for x in (ci.note, pnote, "arm-B trials shared by several arm-A settings"
                                             if shared else None) if x) or None
                rows.append({"comparison": name, "arm_a": a, "arm_b": b, "phase": phase, **d,
                             "n_pairs": len(diff), "mean_diff": float(diff.mean()) if len(diff) else math.nan,
                             "ci_low": ci.low, "ci_high": ci.high, "wilcoxon_p": p, "higher_is_better": higher,
                             "favours": favours, "note": note})
    return _typed(pd.DataFrame(rows), "downstream_pairs.parquet")


def _config(configs: dict[str, Any], tid: str) -> dict[str, Any] | None:
    cfg = configs.get(tid)
    if isinstance(cfg, list):           # collect keeps duplicates as a list of candidates
        cfg = cfg[0] if cfg else None
    if not isinstance(cfg, dict) or "seed" not in cfg:
        return None
    return {k: v for k, v in cfg.items() if k != results.TRIAL_ID}


def _typed(df: pd.DataFrame, table: str) -> pd.DataFrame:
    cols = schema.TABLES[table]
    if df.empty:
        return pd.DataFrame({name: pd.Series(dtype=dt) for name, dt, _ in cols})
    out = pd.DataFrame({name: df[name].astype(dt) for name, dt, _ in cols})
    return out


# ---------------------------------------------------------------------------------------------- figure
def _label(r: pd.Series) -> str:
    m = str(r["measure"])
    if str(r["family"]) == "augmentation":
        m = f"{m} {r['augmentation']}, {int(r['scarce_size'])} real"
    return m + (" (↑)" if _higher(str(r["measure"])) else " (↓)")


def downstream_figure(arms: pd.DataFrame, headroom: pd.DataFrame | None = None):
    """One panel per measured quantity (augmentation: the gain): the mean per arm with its CI, one marker
    per (phase, n). An augmentation panel whose headroom (results.augmentation_headroom) is not informative for
    any phase is greyed and titled so: its differences are noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = arms[~arms["augmentation"].astype(str).isin(("none", "generated"))]
    floor = a[a["model"].astype(str) == REAL]
    a = a[a["model"].astype(str) != REAL]
    if a.empty:
        return None
    quantities = a.drop_duplicates(KEYS)[KEYS].reset_index(drop=True)
    k = len(quantities)
    ncol = min(4, k)
    nrow = math.ceil(k / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    models = [m for m in schema.MODELS if (a["model"].astype(str) == m).any()]
    groups = a.drop_duplicates(["phase", "n"])[["phase", "n"]].values.tolist()
    width = 0.6 / max(1, len(groups))
    for i, q in quantities.iterrows():
        ax = axes[i // ncol][i % ncol]
        sel = a
        for c in KEYS:
            sel = sel[sel[c] == q[c]]
        for j, (ph, n) in enumerate(groups):
            g = sel[(sel["phase"] == ph) & (sel["n"] == n)].set_index("model")
            xs, ys, lo, hi = [], [], [], []
            for x, m in enumerate(models):
                if m in g.index:
                    r = g.loc[m]
                    xs.append(x + (j - (len(groups) - 1) / 2) * width)
                    ys.append(r["mean"])
                    lo.append(r["mean"] - r["ci_low"] if math.isfinite(r["ci_low"]) else 0.0)
                    hi.append(r["ci_high"] - r["mean"] if math.isfinite(r["ci_high"]) else 0.0)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=4, capsize=2, label=f"{ph} n={n}")
        if str(q["augmentation"]) == "gain":
            ax.axhline(0.0, color="0.6", lw=0.8, ls="--")
        fl = floor
        for c in KEYS:
            fl = fl[fl[c] == q[c]]
        for v in fl["mean"]:
            ax.axhline(float(v), color="tab:green", lw=1.0, ls=":", label="real vs real" if i == 0 else None)
        ax.set_xticks(range(len(models)), [schema.ARM_NAMES[m] for m in models], fontsize=8)
        title = _label(q)
        if headroom is not None and str(q["family"]) == "augmentation":
            h = headroom[(headroom["measure"] == q["measure"]) & (headroom["scarce_size"] == q["scarce_size"])]
            if len(h) and not (h["verdict"] == "informative").any():
                ax.set_facecolor("0.93")
                title += f"\n{'/'.join(sorted(set(h['verdict'])))}: cannot credit any arm"
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for i in range(k, nrow * ncol):
        axes[i // ncol][i % ncol].axis("off")
    axes[0][0].legend(fontsize=6, loc="best")
    fig.suptitle("Downstream measures per arm (mean over trials, bootstrap CI; ↑/↓: higher/lower is better)",
                 fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- report
def report_section(arms: pd.DataFrame, pairs: pd.DataFrame, figure: str | None, confidence: float,
                   headroom: pd.DataFrame | None = None) -> list[str]:
    """The report.md section of the downstream measures (lines); headroom: results.augmentation_headroom of
    the downstream frame (whether the augmentation measure can speak), its own subsection when given."""
    from .report import _fmt, md_table

    pct = int(round(100 * confidence))
    L = ["## Downstream measures (`qgan evaluate`)", "",
         "Augmentation value of each trial's images for a ferrite/bainite classifier trained on scarce real "
         "images (gain = with minus without, same classifier seeds), distances in the feature space of a "
         "classifier trained on real patches (Fréchet distance, k-NN precision / recall) and physical "
         "plausibility of the channels; docs/analysis.md, \"Downstream measures\", says what each means. "
         f"Values are means over classifier seeds, then over trials, with {pct} % bootstrap intervals.", ""]
    if headroom is not None and len(headroom):
        L += _headroom_lines(headroom)
    models = [m for m in schema.MODELS if (arms["model"].astype(str) == m).any()]
    floor = arms[arms["model"].astype(str) == REAL].set_index(["phase", *KEYS])["mean"]
    rows = []
    for key, g in arms[arms["model"].astype(str) != REAL].groupby(["phase", "n", *KEYS], dropna=False,
                                                                  observed=True, sort=True):
        d = dict(zip(["phase", "n", *KEYS], key))
        if d["augmentation"] in ("none", "generated"):
            continue
        cells = []
        for m in models:
            r = g[g["model"] == m]
            cells.append("–" if r.empty else f"{_fmt(float(r['mean'].iloc[0]))} [{_fmt(float(r['ci_low'].iloc[0]))}, "
                                             f"{_fmt(float(r['ci_high'].iloc[0]))}] ({int(r['n_trials'].iloc[0])})")
        fk = (d["phase"], *(d[c] for c in KEYS))
        cells.append(_fmt(float(floor[fk])) if fk in floor.index else "–")
        rows.append([d["phase"], d["n"], _label(pd.Series(d))] + cells)
    L += ["### Per arm", "", "Augmentation rows: the gain (accuracy with minus without the trial's images); "
          "downstream_arms.parquet also holds both accuracies. *Real vs real*: held-out real images measured in "
          "place of generated ones (the floor of each distance, the augmentation value of as many new real "
          "images).", "",
          md_table(rows, ["phase", "n", "measure", *[schema.ARM_NAMES[m] for m in models], "real vs real"]), ""]
    L += ["### Paired differences (arm A − arm B)", ""]
    if pairs.empty:
        L += ["No paired trials: the run lacks at least two arms of one setting and seed.", ""]
    else:
        prow = [[r["comparison"], r["phase"], _label(r), int(r["n_pairs"]), _fmt(r["mean_diff"]),
                 f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(r["wilcoxon_p"], "p"),
                 schema.ARM_NAMES.get(str(r["favours"]), str(r["favours"]))] for _, r in pairs.iterrows()]
        L += [md_table(prow, ["comparison", "phase", "measure", "pairs", "A − B", f"{pct} % CI", "Wilcoxon p",
                              "CI favours"]), ""]
        k = int((pairs["n_pairs"] > 1).sum())
        L += [f"{k} intervals at {pct} %: about {max(1, round(k * (1 - confidence)))} of them would exclude 0 by "
              "chance alone if no arm differed; read a lone \"favours\" as a lead, not a finding.", ""]
        if pairs["note"].notna().any():
            L += ["Notes: " + "; ".join(sorted(set(pairs["note"].dropna().astype(str)))), ""]
    if figure:
        L += [f"![downstream]({figure})", ""]
    return L


def _headroom_lines(headroom: pd.DataFrame) -> list[str]:
    """"Can the augmentation measure speak?": per phase and scarce size the real-only accuracy, the gain of as
    many new real images (95 % t interval over classifier seeds) and the verdict (results.HEADROOM_VERDICTS)."""
    from .report import _fmt, md_table

    acc = headroom[headroom["measure"].astype(str) == "accuracy"]
    rows = [[r.phase, int(r.scarce_size), _fmt(r.real_only), f"{_fmt(r.real_gain)} [{_fmt(r.real_gain_low)}, "
             f"{_fmt(r.real_gain_high)}]", int(r.classifier_seeds), f"**{r.verdict}**"] for r in acc.itertuples()]
    speaks = acc[acc["verdict"] == "informative"]
    L = ["### Can the augmentation measure speak?", "",
         "A generated set can only be credited where new *real* images help: the real-vs-real rows add as many "
         "held-out real images to the scarce class.", "",
         *(f"- **{k}**: {v}" for k, v in results.HEADROOM_VERDICTS.items()), "",
         md_table(rows, ["phase", "scarce size", "real-only accuracy", "gain of new real images [95 % CI]",
                         "classifier seeds", "verdict"]), ""]
    if speaks.empty:
        L += ["**The augmentation measure cannot credit any arm on this evaluation**: read its rows below as "
              "noise, and the feature and physical measures instead; a harder task (smaller `--scarce-sizes`, "
              "fewer `--channels`) may give it room (docs/analysis.md).", ""]
    else:
        where = ", ".join(f"{r.phase} {int(r.scarce_size)}" for r in speaks.itertuples())
        L += [f"The augmentation rows can be read at {where} only.", ""]
    return L
