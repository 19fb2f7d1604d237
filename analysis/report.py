"""report.md: the result in plain words, the comparison with the paper, one section per comparison of the
three arms (effects, tests, win / tie / loss), the floor, diversity, latent pools, prior diagnostics, the
unpaired settings and trials left out, and the figures."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import schema
from .fmt import fmt_ci, fmt_ri

#: The paper's results (spec §7): ferrite all positive, RI 22..99 %; bainite 7 of 10, -45..150 %; 70 % headline.
PAPER = {"ferrite": "all cases positive, RI 22 % to 99 %", "bainite": "7 of 10 cases positive, RI -45 % to 150 %"}
PAPER_SCALE = {"epochs": 2000, "train_size": 3000, "seeds": 5}
#: What each comparison asks.
QUESTION = {"qcbm_vs_bernoulli": "the paper's Eq. 10: does the trained circuit beat the fixed Bernoulli(0.5) latent?",
            "qcbm_vs_product": "the quantum question: does the circuit beat a trained classical product prior "
                               "with the same optimiser and schedule?",
            "product_vs_bernoulli": "does training a classical product prior alone beat the fixed Bernoulli latent?"}
NAMES = schema.ARM_NAMES


def _fmt(v: Any, kind: str = "g") -> str:
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and not math.isfinite(v)):
        return "–"
    if kind == "pct":
        x = 100 * float(v)
        return f"{x:+.1f} %" if abs(x) >= 1 or x == 0 else f"{x:+.2g} %"
    if kind == "p":
        return f"{float(v):.3g}"
    if kind == "g" and isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _s(v: Any) -> str:
    """Text of a nullable cell: '' for None / NA."""
    return "" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)


def _pm(values: Sequence[float]) -> str:
    """'mean ± sd (n)' of the finite values; '–' if none."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not len(x):
        return "–"
    spread = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    if math.isfinite(spread) and spread <= 1e-9 * max(abs(float(x.mean())), 1e-300):
        spread = 0.0                                   # rounding noise of equal values
    sd = f" ± {spread:.3g}" if len(x) > 1 else ""
    return f"{x.mean():.4g}{sd} (n = {len(x)})"


def md_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table ('|' in cells escaped)."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _agg(winrate: pd.DataFrame, comparison: str, unit: str = "setting") -> pd.DataFrame:
    w = winrate[(winrate["comparison"].astype(str) == comparison) & (winrate["unit"] == unit)]
    return w[w["scope"] != "setting"]


def _paired(improvement: pd.DataFrame, comparison: str) -> pd.DataFrame:
    return improvement[(improvement["comparison"].astype(str) == comparison)
                       & (improvement["pair_status"] == "paired")]


def _wtl(w: pd.Series) -> str:
    return f"{int(w['wins'])} win(s), {int(w['ties'])} tie(s), {int(w['losses'])} loss(es)"


def _stratum(w: pd.Series) -> str:
    """The row's stratum text, '' for none or `all`."""
    v = w.get("stratum")
    return "" if v is None or v is pd.NA or str(v) == "all" else str(v)


def _count_sentence(w: pd.Series, arm: str, sub: pd.DataFrame) -> str:
    strat = f" [{_stratum(w)}]" if _stratum(w) else ""
    return (f"{w['phase']}{strat}: the {NAMES[arm]} is better in {int(w['wins'])} of {int(w['n'])} paired settings "
            f"({_wtl(w)}; win rate {100 * w['win_rate']:.0f} %, Wilson {int(round(100 * w['confidence']))} % CI "
            f"{100 * w['wilson_low']:.0f}–{100 * w['wilson_high']:.0f} %, sign test p = {_fmt(w['sign_p'], 'p')}), "
            f"RI from {_fmt(sub['ri'].min(), 'pct')} to {_fmt(sub['ri'].max(), 'pct')} "
            f"(median {_fmt(sub['ri'].median(), 'pct')})")


def all_ci_span_zero(paired: pd.DataFrame) -> bool:
    """True when no paired setting's RI CI excludes 0 (every outcome a tie)."""
    return len(paired) > 0 and bool((paired["outcome"].astype(object).fillna("tie") == "tie").all())


def _span_sentence(paired: pd.DataFrame, a: str, b: str) -> str:
    missing = int(paired["ri_ci_low"].isna().sum())
    extra = f" ({missing} of them have no CI at all)" if missing else ""
    return (f"**Every RI confidence interval of {NAMES[a]} vs {NAMES[b]} spans 0**{extra}: in no paired setting "
            f"does this run show either arm better at this confidence level.")


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
    """One paragraph stating the result of every comparison and how qcbm_vs_bernoulli compares with the paper."""
    comps = [c for c in schema.COMPARISONS if (improvement["comparison"].astype(str) == c[0]).any()]
    if not comps:
        return "In this run no two arms could be compared. " + scale_caveat(trials, improvement)[1]
    bullets = []
    for name, a, b in comps:
        agg = _agg(winrate, name)
        paired = _paired(improvement, name)
        lead = f"- **{NAMES[a]} vs {NAMES[b]}** (`{name}`): "
        if paired.empty:
            bullets.append(lead + "no setting could be paired (see 'Unpaired settings' below).")
            continue
        text = ""
        phases = agg[agg["scope"] == "phase"]
        parts = []
        for _, w in phases.iterrows():
            sub = paired[paired["phase"].astype(object) == w["phase"]]
            if _stratum(w):
                sub = sub[sub["stratum"].astype(str) == _stratum(w)]
            parts.append(_count_sentence(w, a, sub))
        text += "; ".join(parts) + ". "
        for _, w in agg[agg["scope"] == "pooled"].iterrows():
            strat = f" in stratum {_stratum(w)}" if _stratum(w) else ""
            text += (f"Pooled over phases{strat}, the {NAMES[a]} wins {int(w['wins'])} of {int(w['n'])} settings "
                     f"({_wtl(w)}; {int(w['n_partner_groups'])} independent partner group(s); Wilson CI "
                     f"{100 * w['wilson_low']:.0f}–{100 * w['wilson_high']:.0f} %, sign test p = "
                     f"{_fmt(w['sign_p'], 'p')}). ")
        if all_ci_span_zero(paired):
            text += _span_sentence(paired, a, b) + " "
        if name == "qcbm_vs_bernoulli":
            text += ("The paper reports ferrite: " + PAPER["ferrite"] + "; bainite: " + PAPER["bainite"] +
                     "; and a 70 % headline (which matches the bainite rate, not a pooled count). ")
            cmp = []
            for _, w in phases.iterrows():
                if int(w["n"]) == 0:
                    continue
                strat = f" [{_stratum(w)}]" if _stratum(w) else ""
                if w["phase"] == "ferrite":
                    agree = int(w["wins"]) == int(w["n"])
                    cmp.append(f"ferrite{strat} {'agrees' if agree else 'does not agree'} with 'QCBM better in "
                               "all cases' (a win needs a CI above 0)")
                elif w["phase"] == "bainite":
                    inside = w["wilson_low"] <= 0.7 <= w["wilson_high"]
                    cmp.append(f"the bainite{strat} win rate's interval {'contains' if inside else 'excludes'} "
                               "the paper's 70 %")
            if cmp:
                text += "Direction of the comparison: " + "; ".join(cmp) + ". "
        bullets.append(lead + text.strip())
    small, cav = scale_caveat(trials, improvement)
    return "In this run:\n\n" + "\n".join(bullets) + "\n\n" + cav


def _comparison_section(name: str, a: str, b: str, improvement: pd.DataFrame, winrate: pd.DataFrame,
                        confidence: float) -> list[str]:
    paired = _paired(improvement, name)
    level = int(round(100 * confidence))
    L = [f"## {NAMES[a]} vs {NAMES[b]} (`{name}`)", "", f"Question: {QUESTION[name]} RI = (MMD_B − MMD_A) / "
         f"MMD_A with A = {NAMES[a]}, B = {NAMES[b]} (positive: {NAMES[a]} better). Outcome: win when the {level} % "
         "bootstrap CI of RI lies above 0, loss when below, else tie.", ""]
    if paired.empty:
        return L + ["No setting could be paired.", ""]
    if all_ci_span_zero(paired):
        L += [_span_sentence(paired, a, b), ""]
    n_under = int(paired["underpowered"].fillna(False).astype(bool).sum())
    if n_under:
        L += [f"{n_under} of {len(paired)} settings are **underpowered** (< {schema.MIN_POWERED_SEEDS} paired seeds: "
              "with 5 seeds the two-sided Wilcoxon cannot go below p = 0.0625).", ""]
    L += ["### Per setting", "", "RI and its CI are printed to the precision of the CI (its half-width to two "
          "significant digits).", ""]
    L.append(md_table([[r["label"], _s(r["stratum"]), int(r["n_seeds"]), _fmt(r["mmd_a"]), _fmt(r["mmd_b"]),
                        fmt_ri(r["ri"], r["ri_ci_low"], r["ri_ci_high"]),
                        fmt_ci(r["ri_ci_low"], r["ri_ci_high"])
                        + (f" ({r['ri_ci_method']})" if _s(r["ri_ci_method"]) else ""),
                        _s(r["outcome"]), _fmt(r["log_ratio_mean"]),
                        f"{_fmt(r['log_ratio_ci_low'])} … {_fmt(r['log_ratio_ci_high'])}", _fmt(r["t_p"], "p"),
                        _fmt(r["wilcoxon_p"], "p"), f"{int(r['sign_a_better'])}:{int(r['sign_b_better'])}",
                        "yes" if bool(r["underpowered"]) else "no", _s(r["test_note"])]
                       for _, r in paired.iterrows()],
                      ["setting", "stratum", "seeds", "MMD_A", "MMD_B", "RI", f"RI {level} % CI", "outcome",
                       "mean log(MMD_B/MMD_A)", "t CI", "paired-t p", "Wilcoxon p", "seeds A:B better",
                       "underpowered", "note"]))
    agg = _agg(winrate, name)
    L += ["", "### Win / tie / loss", "",
          "One outcome per paired setting; each partner group counts at most once per row (settings that share "
          "one are split into strata). Sign test: wins vs losses; Wilson interval: wins / (wins + ties + losses).",
          ""]
    L.append(md_table([[r["phase"], _s(r["stratum"]), int(r["wins"]), int(r["ties"]), int(r["losses"]), int(r["n"]),
                        int(r["n_partner_groups"]),
                        f"{100 * r['win_rate']:.1f} %" if r["n"] else "–",
                        f"{100 * r['wilson_low']:.1f}–{100 * r['wilson_high']:.1f} %" if r["n"] else "–",
                        _fmt(r["sign_p"], "p"), _fmt(r["ri_min"], "pct"), _fmt(r["ri_max"], "pct"), _s(r["note"])]
                       for _, r in agg.iterrows()],
                      ["phase", "stratum", "wins", "ties", "losses", "n", "partner groups", "win rate", "Wilson CI",
                       "sign-test p", "RI min", "RI max", "note"]))
    seeds = _agg(winrate, name, "seed")
    if len(seeds):
        L += ["", "Per paired seed (win: MMD_B > MMD_A). Where settings share a partner group these counts reuse "
              "its trials and are **not independent**: descriptive only.", ""]
        L.append(md_table([[r["phase"], int(r["wins"]), int(r["ties"]), int(r["losses"]), int(r["n"]),
                            "yes" if bool(r["independent"]) else "no", _fmt(r["sign_p"], "p"),
                            _fmt(r["wilcoxon_p"], "p")] for _, r in seeds.iterrows()],
                          ["phase", "wins", "ties", "losses", "n", "independent", "sign-test p", "Wilcoxon p"]))
    return L + [""]


def _floor_section(trials: pd.DataFrame) -> list[str]:
    u = trials[trials["usable"]]
    L = ["## Real-vs-real floor", "", "The residual MMD between two real sets (summary.json `mmd_floor`), mean ± sd "
         "over usable trials; an MMD near the floor cannot be improved on.", ""]
    rows = [["all", _pm(u["mmd_floor"].tolist())]]
    if "phase" in u:
        rows += [[str(p), _pm(g["mmd_floor"].tolist())] for p, g in u.groupby("phase", sort=True)]
    return L + [md_table(rows, ["phase", "floor: mean ± sd (n trials)"]), ""]


def _diversity_section(trials: pd.DataFrame) -> list[str]:
    u = trials[trials["usable"]]
    L = ["## Diversity", ""]
    if not (u["diversity_final"].notna().any() or u["diversity_real"].notna().any()):
        return L + ["No trial recorded diversity (older trainer): columns `diversity_final` / `diversity_real` are "
                    "NaN.", ""]
    L += ["Mean pairwise distance between generated eval images (`diversity_final`) against the same for the "
          "held-out real set (`diversity_real`), per arm; a ratio well below 1 hints at mode collapse.", ""]
    rows = []
    keys = ["phase", "model"] if "phase" in u else ["model"]
    for key, g in u.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        gen, real = g["diversity_final"].to_numpy(float), g["diversity_real"].to_numpy(float)
        ok = np.isfinite(gen) & np.isfinite(real) & (real > 0)
        ratio = _fmt(float(np.mean(gen[ok] / real[ok]))) if ok.any() else "–"
        rows.append([*[str(k) for k in key[:-1]], NAMES.get(str(key[-1]), str(key[-1])), _pm(gen.tolist()),
                     _pm(real.tolist()), ratio])
    head = (["phase"] if "phase" in u else []) + ["arm", "generated: mean ± sd", "real: mean ± sd",
                                                  "generated / real"]
    return L + [md_table(rows, head), ""]


def _pool_section(trials: pd.DataFrame) -> list[str]:
    L = ["## Latent pools", ""]
    used = trials[trials["latent_pool_used"]]
    if used.empty:
        return L + ["No trial used a latent pool: every trial drew fresh latents each epoch.", ""]
    L += [f"{len(used)} of {len(trials)} trials reused a latent pool (`latent_pool` > 0, or a QCBM trial on "
          f"backend {' / '.join(schema.POOL_BACKENDS)}); `latent_pool` is part of every pairing key.", ""]
    rows = []
    for _, r in used.head(50).iterrows():
        rows.append([r["trial_id"], NAMES.get(str(r.get("model")), str(r.get("model"))),
                     _fmt(r.get(schema.LATENT_POOL_FIELD)) if schema.LATENT_POOL_FIELD in used else "–",
                     _fmt(r.get("backend")) if "backend" in used else "–", "yes" if r["usable"] else "no"])
    L.append(md_table(rows, ["trial", "arm", "latent_pool", "backend", "usable"]))
    if len(used) > 50:
        L.append(f"\n… and {len(used) - 50} more (trials.parquet column `latent_pool_used`).")
    return L + [""]


PRIOR_FINAL = (("prior_tv_final", "TV"), ("prior_entropy_bits_final", "entropy (bits)"),
               ("prior_total_correlation_bits_final", "total corr. (bits)"),
               ("prior_max_marginal_shift_final", "max marginal shift"), ("theta_shift_rx_final", "Δθ RX"),
               ("theta_shift_rz_final", "Δθ RZ"), ("theta_shift_rxx_final", "Δθ RXX"))


def _prior_section(trials: pd.DataFrame, improvement: pd.DataFrame) -> list[str]:
    L = ["## Prior diagnostics", ""]
    u = trials[trials["usable"]]
    if "model" in u:
        u = u[u["model"].astype(object).isin(list(schema.TRAINED_MODELS)).to_numpy(bool)]
    cols = [c for c, _ in PRIOR_FINAL if c in u]
    if u.empty or not u[cols].notna().any().any():
        return L + ["No trained-prior trial recorded prior diagnostics (older trainer, or no qcbm / product trial).",
                    ""]
    L += ["Final recorded value per trial (last update epoch), mean over the setting's seeds. A product prior has "
          "no total correlation by construction; a QCBM near the uniform start has TV ≈ 0 and entropy ≈ n.", ""]
    labels: dict[str, str] = {}
    for _, r in improvement.iterrows():
        labels.setdefault(str(r["setting_id"]), str(r["label"]))
    rows = []
    order = {m: i for i, m in enumerate(schema.MODELS)}
    groups = sorted(u.groupby("setting_id", sort=False),
                    key=lambda kv: (order.get(str(kv[1]["model"].iloc[0]), 9), labels.get(str(kv[0]), str(kv[0]))))
    shown = [c for c in cols if u[c].notna().any()]
    for sid, g in groups:
        ex = g["prior_exact_final"].dropna()
        rows.append([NAMES.get(str(g["model"].iloc[0]), ""), labels.get(str(sid), str(sid)), len(g),
                     *[_fmt(float(g[c].mean())) if g[c].notna().any() else "–" for c in shown],
                     f"{int(ex.astype(bool).sum())}/{len(ex)}" if len(ex) else "–"])
    names = dict(PRIOR_FINAL)
    L.append(md_table(rows, ["arm", "setting", "seeds", *[names[c] for c in shown], "exact"]))
    return L + [""]


def write_report(path: Path, run_dir: Path, trials: pd.DataFrame, improvement: pd.DataFrame,
                 winrate: pd.DataFrame, figures: dict[str, list[Path]], notes: list[str], seconds: float,
                 resamples: int, confidence: float, downstream: list[str] | None = None) -> str:
    """Compose report.md (returned as text; the caller writes it atomically); `downstream`: the lines of the
    downstream section (analysis.downstream.report_section), if any."""
    out_dir = path.parent
    rel = lambda p: Path(p).relative_to(out_dir).as_posix()
    n_all, n_use = len(trials), int(trials["usable"].sum())
    arms = [m for m in schema.MODELS if "model" in trials and (trials["model"].astype(object) == m).any()]
    L: list[str] = [f"# Analysis of `{run_dir}`", "",
                    f"{n_all} trial folders, {n_use} usable, {n_all - n_use} left out; arms: "
                    f"{', '.join(NAMES[m] for m in arms) or 'none'}. Bootstrap: {resamples} resamples, "
                    f"{int(round(100 * confidence))} % BCa intervals (percentile where BCa is degenerate). "
                    f"Analysis took {seconds:.1f} s.", "", "## Result", "",
                    result_paragraph(trials, improvement, winrate), "",
                    "## How the comparisons are counted", "",
                    "- Each comparison A_vs_B pairs an arm-A setting with the arm-B trials that agree in every field "
                    "except `model` and the fields either arm ignores (Bernoulli ignores circuit and prior fields, "
                    "product ignores circuit fields), seed by seed; RI = (MMD_B − MMD_A) / MMD_A.",
                    "- Per setting: RI with its paired bootstrap CI (BCa), a paired t-test on log MMD, the sign "
                    "test and the Wilcoxon signed-rank test over seeds. Fewer than "
                    f"{schema.MIN_POWERED_SEEDS} paired seeds: `underpowered`.",
                    "- Outcome of a setting: win when its RI CI lies above 0, loss when below 0, otherwise (or "
                    "without a CI) tie.",
                    "- Win rates count independent comparisons only: settings sharing one partner group (e.g. QCBM "
                    "settings differing only in `update_every`, all paired with the same Bernoulli trials) are "
                    "split into strata by the fields that tell them apart, and each row counts every partner group "
                    "at most once. Per-seed counts over such settings are marked not independent.", ""]
    for name, a, b in schema.COMPARISONS:
        if (improvement["comparison"].astype(str) == name).any():
            L += _comparison_section(name, a, b, improvement, winrate, confidence)
    L += _floor_section(trials)
    L += _diversity_section(trials)
    L += _pool_section(trials)
    L += _prior_section(trials, improvement)
    L += list(downstream or [])
    unp = improvement[improvement["pair_status"] != "paired"]
    L += ["## Unpaired settings", ""]
    if len(unp):
        L.append(md_table([[r["comparison"], r["label"], r["setting_id"], r["pair_status"], r["unpaired_reason"]]
                           for _, r in unp.iterrows()], ["comparison", "setting", "id", "status", "reason"]))
    else:
        L.append("None: every setting found its partner.")
    bad = trials[~trials["usable"]]
    L += ["", "## Trials left out", "", "Failed, unfinished or inconsistent trials; none of them enters any mean.", ""]
    if len(bad):
        L.append(md_table([[r["trial_id"], r["status"], int(r["epochs_completed"]), _s(r["problem"])]
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
    for kind, title in (("ri", "Relative improvement against n"), ("prior", "Prior diagnostics"),
                        ("mmd", "MMD against epoch"), ("samples", "Real vs generated samples")):
        pngs = [p for p in figures.get(kind, []) if str(p).endswith(".png")]
        if not pngs:
            continue
        L += [f"### {title}", ""]
        for p in pngs:
            L += [f"![{p.stem}]({rel(p)})", ""]
    L += ["## Files", "", "- `trials.parquet`, `epochs.parquet`: every trial and epoch (schema: docs/analysis.md)",
          "- `improvement.parquet`, `pairs.parquet`: Eq. 10 per comparison and setting, and the per-seed pairs",
          "- `winrate.parquet`: win / tie / loss counts per stratum, Wilson intervals, sign and Wilcoxon tests",
          "- `figures/`: PNG and PDF of every figure", ""]
    return "\n".join(L)
