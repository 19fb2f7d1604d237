"""report.md: the result in plain words, the comparison with the paper, the tables and the figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: The paper's results (spec §7): ferrite all positive, RI 22..99 %; bainite 7 of 10, -45..150 %; 70 % headline.
PAPER = {"ferrite": "all cases positive, RI 22 % to 99 %", "bainite": "7 of 10 cases positive, RI -45 % to 150 %"}
PAPER_SCALE = {"epochs": 2000, "train_size": 3000, "seeds": 5}


def _fmt(v: Any, kind: str = "g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA:
        return "–"
    if kind == "pct":
        x = 100 * float(v)
        return f"{x:+.1f} %" if abs(x) >= 1 or x == 0 else f"{x:+.2g} %"
    if kind == "p":
        return f"{float(v):.3g}"
    if kind == "g" and isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def md_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table ('|' in cells escaped)."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _phase_sentence(w: pd.Series | None, imp: pd.DataFrame, phase: str) -> str:
    if w is None or int(w["n"]) == 0:
        return f"{phase}: no paired setting"
    sub = imp[(imp["pair_status"] == "paired") & (imp["phase"].astype(object) == phase)] if phase != "all" else \
        imp[imp["pair_status"] == "paired"]
    return (f"{phase}: the QCBM has the lower final MMD in {int(w['wins'])} of {int(w['n'])} paired settings "
            f"({100 * w['win_rate']:.0f} %, Wilson 95 % CI {100 * w['wilson_low']:.0f}–{100 * w['wilson_high']:.0f} %, "
            f"sign test p = {_fmt(w['sign_p'], 'p')}), RI from {_fmt(sub['ri'].min(), 'pct')} to "
            f"{_fmt(sub['ri'].max(), 'pct')} (median {_fmt(sub['ri'].median(), 'pct')})")


def scale_caveat(trials: pd.DataFrame, improvement: pd.DataFrame) -> tuple[bool, str]:
    """(is_small, sentence): whether the run is far below the paper's scale (epochs, images, seeds)."""
    u = trials[trials["usable"]]
    ep = int(u["epochs"].max()) if "epochs" in u and len(u) else 0
    ts = int(u["train_size"].max()) if "train_size" in u and len(u) else 0
    paired = improvement[improvement["pair_status"] == "paired"]
    seeds = int(paired["n_seeds"].min()) if len(paired) else 0
    small = ep < 1000 or ts < 1000 or seeds < PAPER_SCALE["seeds"]
    what = (f"at most {ep} epochs, at most {ts} training images, "
            + (f"at least {seeds} paired seed(s) per setting" if len(paired) else "no paired setting"))
    if small:
        return True, (f"**Caveat:** this run is far too small to reproduce the paper ({what}; the paper trains "
                      f"{PAPER_SCALE['epochs']}–4000 epochs on 3000–9000 images with 5 seeds per case). Its numbers "
                      "check the pipeline, not the paper's claim.")
    return False, f"Scale: {what}; comparable with the paper's (2000–4000 epochs, 3000–9000 images, 5 seeds)."


def result_paragraph(trials: pd.DataFrame, improvement: pd.DataFrame, winrate: pd.DataFrame) -> str:
    """One paragraph stating the result and how it compares with the paper."""
    agg = winrate[(winrate["unit"] == "setting") & (winrate["scope"] != "setting")]
    by_phase = {str(r["phase"]): r for _, r in agg.iterrows()}
    phases = [p for p in by_phase if p != "all"]
    parts = [_phase_sentence(by_phase.get(p), improvement, p) for p in phases]
    pooled = by_phase.get("all")
    text = "In this run, " + ("; ".join(parts) if parts else "no setting could be paired (see 'Unpaired settings' below)") + ". "
    if pooled is not None and int(pooled["n"]) > 0:
        text += (f"Pooled over phases the QCBM wins {int(pooled['wins'])} of {int(pooled['n'])} settings "
                 f"({100 * pooled['win_rate']:.0f} %, Wilson 95 % CI {100 * pooled['wilson_low']:.0f}–"
                 f"{100 * pooled['wilson_high']:.0f} %). ")
    seed_all = winrate[(winrate["unit"] == "seed") & (winrate["scope"] == "pooled")]
    if len(seed_all) and int(seed_all.iloc[0]["n"]) > 0:
        s = seed_all.iloc[0]
        text += f"Counted per paired seed instead, it wins {int(s['wins'])} of {int(s['n'])} ({100 * s['win_rate']:.0f} %). "
    text += ("The paper reports ferrite: " + PAPER["ferrite"] + "; bainite: " + PAPER["bainite"] +
             "; and a 70 % headline (which matches the bainite rate, not a pooled count). ")
    cmp = []
    for p in phases:
        w = by_phase[p]
        if int(w["n"]) == 0:
            continue
        if p == "ferrite":
            agree = int(w["wins"]) == int(w["n"])
            cmp.append(f"ferrite {'agrees' if agree else 'does not agree'} with 'QCBM better in all cases'")
        elif p == "bainite":
            inside = w["wilson_low"] <= 0.7 <= w["wilson_high"]
            cmp.append(f"the bainite win rate's interval {'contains' if inside else 'excludes'} the paper's 70 %")
    if cmp:
        text += "Direction of the comparison: " + "; ".join(cmp) + ". "
    small, cav = scale_caveat(trials, improvement)
    return text + cav


def write_report(path: Path, run_dir: Path, trials: pd.DataFrame, improvement: pd.DataFrame,
                 winrate: pd.DataFrame, figures: dict[str, list[Path]], notes: list[str], seconds: float,
                 resamples: int, confidence: float) -> str:
    """Compose report.md (returned as text; the caller writes it atomically)."""
    out_dir = path.parent
    rel = lambda p: Path(p).relative_to(out_dir).as_posix()
    n_all, n_use = len(trials), int(trials["usable"].sum())
    L: list[str] = [f"# Analysis of `{run_dir}`", "",
                    f"{n_all} trial folders, {n_use} usable, {n_all - n_use} left out. "
                    f"Bootstrap: {resamples} resamples, {int(100 * confidence)} % percentile intervals. "
                    f"Analysis took {seconds:.1f} s.", "", "## Result", "",
                    result_paragraph(trials, improvement, winrate), ""]

    L += ["## Win rates", "", "Unit `setting`: one Eq. 10 value per paired setting (win = RI > 0). Unit `seed`: "
          "one comparison per paired seed (win = MMD_B > MMD_Q). Ties are left out of the sign test.", ""]
    agg = winrate[winrate["scope"] != "setting"]
    L.append(md_table([[r["unit"], r["phase"], int(r["wins"]), int(r["losses"]), int(r["ties"]), int(r["n"]),
                        f"{100 * r['win_rate']:.1f} %" if r["n"] else "–",
                        f"{100 * r['wilson_low']:.1f}–{100 * r['wilson_high']:.1f} %" if r["n"] else "–",
                        _fmt(r["sign_p"], "p"), _fmt(r["ri_min"], "pct"), _fmt(r["ri_max"], "pct")]
                       for _, r in agg.iterrows()],
                      ["unit", "phase", "wins", "losses", "ties", "n", "win rate", "Wilson CI", "sign-test p",
                       "RI min", "RI max"]))
    L += ["", "## Relative improvement per setting (Eq. 10)", "",
          "MMD averaged over each trial's final 100 epochs (recomputed from epochs.parquet), then over the paired "
          "seeds; RI = (MMD_B − MMD_Q) / MMD_Q. CI: bootstrap over seeds. p: two-sided Wilcoxon signed-rank "
          "test of the per-seed differences.", ""]
    paired = improvement[improvement["pair_status"] == "paired"]
    if len(paired):
        L.append(md_table([[r["label"], int(r["n_seeds"]), _fmt(r["mmd_b"]), _fmt(r["mmd_q"]), _fmt(r["ri"], "pct"),
                            f"{_fmt(r['ri_ci_low'], 'pct')} … {_fmt(r['ri_ci_high'], 'pct')}",
                            _fmt(r["wilcoxon_p"], "p"), _fmt(r["mmd_floor"]), r["test_note"] or ""]
                           for _, r in paired.iterrows()],
                          ["setting", "seeds", "MMD_B", "MMD_Q", "RI", "CI", "Wilcoxon p", "floor", "note"]))
    else:
        L.append("No setting could be paired.")
    unp = improvement[improvement["pair_status"] != "paired"]
    L += ["", "## Unpaired settings", ""]
    if len(unp):
        L.append(md_table([[r["label"], r["setting_id"], r["pair_status"], r["unpaired_reason"]]
                           for _, r in unp.iterrows()], ["setting", "id", "status", "reason"]))
    else:
        L.append("None: every setting found its partner.")
    bad = trials[~trials["usable"]]
    L += ["", "## Trials left out", "", "Failed, unfinished or inconsistent trials; none of them enters any mean.", ""]
    if len(bad):
        L.append(md_table([[r["trial_id"], r["status"], int(r["epochs_completed"]), r["problem"] or ""]
                           for _, r in bad.iterrows()], ["trial", "status", "epochs", "problem"]))
    else:
        L.append("None.")
    mism = trials[trials["mmd_mismatch"]]
    if len(mism):
        L += ["", f"**{len(mism)} trial(s) whose summary.json final-MMD means disagree with epochs.parquet** "
              "(the recomputed values are used): " + ", ".join(mism["trial_id"].astype(str).head(20))]
    if notes:
        L += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    L += ["", "## Figures", ""]
    for kind, title in (("ri", "Relative improvement against n"), ("mmd", "MMD against epoch"),
                        ("samples", "Real vs generated samples")):
        pngs = [p for p in figures.get(kind, []) if str(p).endswith(".png")]
        if not pngs:
            continue
        L += [f"### {title}", ""]
        for p in pngs:
            L += [f"![{p.stem}]({rel(p)})", ""]
    L += ["## Files", "", "- `trials.parquet`, `epochs.parquet`: every trial and epoch (schema: docs/analysis.md)",
          "- `improvement.parquet`, `pairs.parquet`: Eq. 10 per setting and the per-seed pairs",
          "- `winrate.parquet`: win rates, Wilson intervals, sign and Wilcoxon tests",
          "- `figures/`: PNG and PDF of every figure", ""]
    return "\n".join(L)
