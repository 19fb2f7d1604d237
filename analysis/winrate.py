"""Win / tie / loss counts per comparison, per phase and pooled, over independent comparisons only.

Unit `setting` (the paper's "7 of 10 cases", made honest): each paired setting gives one outcome from its
RI confidence interval: a `win` when the CI lies above 0 (arm A better), a `loss` when it lies below 0, else
a `tie` (a CI containing 0, or no CI). Several arm-A settings can share one partner group (e.g. QCBM
settings that differ only in `update_every` all pair with the same Bernoulli trials); their outcomes are not
independent, so the aggregate rows are split by `stratum` (improvement.assign_strata: the values of the
fields that tell such settings apart), and within a stratum every partner group counts at most once. The
sign test runs on wins vs losses (ties dropped); the Wilson interval is of wins / (wins + ties + losses).

Unit `seed`: one comparison per paired seed (win: MMD_B > MMD_A). Pooled and per-phase seed rows count a
partner trial again for every setting that shares it; they are kept as a description and flagged
`independent = False` with a note whenever that happens. Per setting there is also a row over its own
seeds (independent) with the paired Wilcoxon signed-rank test of MMD_B - MMD_A.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import schema, stats

NOT_INDEPENDENT = ("not independent: {k} partner trial(s) count in more than one setting's comparison "
                   "(settings sharing a partner group); descriptive only")


def _counts_row(cmp: tuple[str, str, str], scope: str, phase: str, stratum: str | None, setting_id: str | None,
                unit: str, wins: int, ties: int, losses: int, ri: np.ndarray, wil_values: np.ndarray,
                groups: int, independent: bool, confidence: float) -> dict[str, Any]:
    n = wins + ties + losses
    ri = ri[np.isfinite(ri)]
    lo, hi = stats.wilson_interval(wins, n, confidence)
    wstat, wp, note = stats.wilcoxon_paired(wil_values, "settings" if unit == "setting" else "seeds")
    if n == 0:
        note = "no paired comparison"
    return {"comparison": cmp[0], "arm_a": cmp[1], "arm_b": cmp[2], "scope": scope, "phase": phase,
            "stratum": stratum, "setting_id": setting_id, "unit": unit, "independent": independent, "n": n,
            "wins": wins, "ties": ties, "losses": losses, "n_partner_groups": groups,
            "win_rate": wins / n if n else math.nan, "wilson_low": lo, "wilson_high": hi,
            "confidence": confidence, "sign_p": stats.sign_test(wins, losses),
            "wilcoxon_stat": wstat, "wilcoxon_p": wp,
            "ri_min": float(ri.min()) if len(ri) else math.nan,
            "ri_median": float(np.median(ri)) if len(ri) else math.nan,
            "ri_max": float(ri.max()) if len(ri) else math.nan, "note": note}


def _phase_of(df: pd.DataFrame, phase: str) -> pd.DataFrame:
    if phase == "all" or "phase" not in df.columns:
        return df
    return df[df["phase"].astype(object) == phase]


def winrate_table(improvement: pd.DataFrame, pairs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """winrate.parquet rows (schema.WINRATE_COLUMNS): per comparison, unit=setting rows per stratum (pooled
    and per phase), unit=seed rows (pooled and per phase), then one row per paired setting over its seeds."""
    rows: list[dict[str, Any]] = []
    present = set(improvement["comparison"].astype(str)) if len(improvement) else set()
    for cmp in schema.COMPARISONS:
        if cmp[0] not in present:
            continue
        imp = improvement[improvement["comparison"].astype(str) == cmp[0]]
        paired = imp[imp["pair_status"] == "paired"]
        prs = pairs[pairs["comparison"].astype(str) == cmp[0]] if len(pairs) else pairs
        phases = sorted({str(p) for p in paired["phase"].dropna()}) if "phase" in paired else []
        strata = list(dict.fromkeys(str(s) for s in paired["stratum"].dropna()))
        scopes = [("pooled", "all")] + [("phase", p) for p in phases]
        for scope, phase in scopes:
            sel = _phase_of(paired, phase)
            if sel.empty:
                rows.append(_counts_row(cmp, scope, phase, "all", None, "setting", 0, 0, 0, np.zeros(0),
                                        np.zeros(0), 0, True, confidence))
                continue
            for st in strata:
                ss = sel[sel["stratum"].astype(str) == st]
                if ss.empty:
                    continue
                groups = ss["pair_key"].astype(str)
                if groups.duplicated().any():   # assign_strata guarantees this never happens
                    raise AssertionError(f"{cmp[0]} stratum {st!r}: a partner group counted twice")
                out = ss["outcome"].astype(object).fillna("tie").tolist()
                ri = ss["ri"].to_numpy(dtype=float)
                row = _counts_row(cmp, scope, phase, st, None, "setting", out.count("win"), out.count("tie"),
                                  out.count("loss"), ri, ri, int(groups.nunique()), True, confidence)
                if len(strata) > 1:
                    extra = f"stratum {strata.index(st) + 1} of {len(strata)}"
                    row["note"] = f"{row['note']}; {extra}" if row["note"] else extra
                rows.append(row)
        for scope, phase in scopes:
            sel = _phase_of(prs, phase)
            ri = sel["ri"].to_numpy(dtype=float)
            fin = ri[np.isfinite(ri)]
            reused = sel.groupby(["trial_id_b"]).size() if len(sel) else pd.Series(dtype=int)
            k = int((reused > 1).sum())
            row = _counts_row(cmp, scope, phase, None, None, "seed", int((fin > 0).sum()), int((fin == 0).sum()),
                              int((fin < 0).sum()), ri, ri, int(sel["pair_key"].nunique()) if len(sel) else 0,
                              k == 0, confidence)
            if k:
                row["note"] = NOT_INDEPENDENT.format(k=k) + (f"; {row['note']}" if row["note"] else "")
            rows.append(row)
        for _, r in paired.iterrows():
            diffs = np.asarray(r["diff_seeds"], dtype=float)
            ri_seed = np.atleast_1d(stats.relative_improvement(np.asarray(r["mmd_b_seeds"], dtype=float),
                                                               np.asarray(r["mmd_a_seeds"], dtype=float)))
            fin = ri_seed[np.isfinite(ri_seed)]
            row = _counts_row(cmp, "setting", str(r.get("phase")), str(r["stratum"]), str(r["setting_id"]), "seed",
                              int((fin > 0).sum()), int((fin == 0).sum()), int((fin < 0).sum()), ri_seed, diffs, 1,
                              True, confidence)
            if r["n_seeds"] < 2:
                row["note"] = f"only {int(r['n_seeds'])} paired seed: no test"
            rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c, _, _ in schema.WINRATE_COLUMNS])
    for c, dt, _ in schema.WINRATE_COLUMNS:
        if dt == "string":
            df[c] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                              for v in df[c].tolist()], dtype="string")
        else:
            df[c] = df[c].astype(dt)
    schema.check_columns(df, "winrate.parquet")
    return df
