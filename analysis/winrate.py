"""Win rates of the QCBM over the Bernoulli baseline, per phase and pooled, with Wilson intervals and tests.

Two units are counted: `setting` (one Eq. 10 value per paired setting; a win is RI > 0; this is the
paper's "7 of 10 cases") and `seed` (one per paired seed; a win is MMD_B > MMD_Q). Per setting there is
also a row over its seeds with the paired Wilcoxon signed-rank test of MMD_B - MMD_Q.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import schema, stats


def _row(scope: str, phase: str, setting_id: str | None, unit: str, ri: np.ndarray, wil_values: np.ndarray,
         confidence: float) -> dict[str, Any]:
    ri = ri[np.isfinite(ri)]
    wins, losses = int((ri > 0).sum()), int((ri < 0).sum())
    ties = int(len(ri) - wins - losses)
    lo, hi = stats.wilson_interval(wins, len(ri), confidence)
    wstat, wp, note = stats.wilcoxon_paired(wil_values)
    if len(ri) == 0:
        note = "no paired comparison"
    return {"scope": scope, "phase": phase, "setting_id": setting_id, "unit": unit, "n": len(ri), "wins": wins,
            "losses": losses, "ties": ties, "win_rate": wins / len(ri) if len(ri) else math.nan,
            "wilson_low": lo, "wilson_high": hi, "confidence": confidence, "sign_p": stats.sign_test(wins, losses),
            "wilcoxon_stat": wstat, "wilcoxon_p": wp,
            "ri_min": float(ri.min()) if len(ri) else math.nan,
            "ri_median": float(np.median(ri)) if len(ri) else math.nan,
            "ri_max": float(ri.max()) if len(ri) else math.nan, "note": note}


def winrate_table(improvement: pd.DataFrame, pairs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """winrate.parquet rows (schema.WINRATE_COLUMNS): pooled and per-phase rows for both units, then one row
    per paired setting over its seeds."""
    paired = improvement[improvement["pair_status"] == "paired"]
    phases = sorted({str(p) for p in paired["phase"].dropna()}) if "phase" in paired else []
    rows = []
    for unit in ("setting", "seed"):
        for scope, phase in [("pooled", "all")] + [("phase", p) for p in phases]:
            if unit == "setting":
                sel = paired if phase == "all" else paired[paired["phase"].astype(object) == phase]
                ri = sel["ri"].to_numpy(dtype=float)
                vals = ri
            else:
                sel = pairs if phase == "all" else pairs[pairs["phase"].astype(object) == phase]
                ri = sel["ri"].to_numpy(dtype=float)
                vals = ri
            rows.append(_row(scope, phase, None, unit, ri, vals, confidence))
    for _, r in paired.iterrows():
        diffs = np.asarray(r["diff_seeds"], dtype=float)
        ri_seed = stats.relative_improvement(np.asarray(r["mmd_b_seeds"], dtype=float),
                                             np.asarray(r["mmd_q_seeds"], dtype=float))
        row = _row("setting", str(r.get("phase")), str(r["setting_id"]), "seed", np.atleast_1d(ri_seed), diffs,
                   confidence)
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
