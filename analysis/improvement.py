"""Eq. 10 per paired setting: pair Bernoulli and QCBM trials seed by seed, average, bootstrap, test.

Pairing (docs/interfaces.md): a QCBM setting is paired with the Bernoulli trials whose config agrees with
it in every field except `model`, the QCBM-only fields (`n` kept) and the bookkeeping fields; within the
pair, trials are matched by `seed`. Only usable trials (collect.py) enter; a setting without a partner, or
without a seed in common, gets a row with its `pair_status` and a plain-words `unpaired_reason`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import schema, stats
from .collect import Collected, config_column, key_id, pair_fields, setting_fields

ALIASES = {"train_size": "T", "epochs": "E", "update_every": "upd", "qcbm_optimizer": "opt",
           "connectivity": "conn", "layers": "L", "batch_size": "bs", "qcbm_lr": "eta", "fd_eps": "eps",
           "backend": "be", "qcbm_epochs": "qE"}
SORT_FIELDS = ("phase", "n", "train_size", "epochs", "update_every")


def _varying_fields(configs: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c if k not in keys]
    out = []
    for k in keys:
        vals = {repr(c.get(k)) for c in configs}
        if len(vals) > 1:
            out.append(k)
    return out


def make_label(cfg: dict[str, Any], varying: list[str]) -> str:
    """'ferrite n=4 T=64 upd=10' from the setting's phase, n and the other fields that vary in the run."""
    parts = [str(cfg.get("phase", "?")), f"n={cfg.get('n', '?')}"]
    for k in varying:
        if k in ("phase", "n", "model"):
            continue
        v = cfg.get(k)
        if v is None:
            continue
        parts.append(f"{ALIASES.get(k, k)}={v}")
    return " ".join(parts)


def _diff_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _closest(target: dict[str, Any], candidates: dict[str, dict[str, Any]]) -> str:
    if not candidates:
        return "the run holds no trial of the other model"
    best = min(candidates.values(), key=lambda c: (len(_diff_fields(target, c)), repr(sorted(c.items()))))
    diffs = _diff_fields(target, best)
    shown = ", ".join(f"{k} ({target.get(k)!r} vs {best.get(k)!r})" for k in diffs[:4])
    more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
    return f"closest config of the other model differs in {shown}{more}"


def _per_seed(group: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """Usable trials of one side -> {seed: {mmd, mmd500, floor, trial_id}} (duplicates averaged)."""
    out: dict[int, dict[str, Any]] = {}
    for seed, g in group.groupby("seed", sort=True):
        out[int(seed)] = {"mmd": float(g["mmd_last100"].mean()), "mmd500": float(g["mmd_last500"].mean()),
                          "floor": g["mmd_floor"].to_numpy(dtype=float),
                          "trial_id": ",".join(g["trial_id"].astype(str))}
    return out


def improvement_table(col: Collected, resamples: int = 10000, confidence: float = 0.95, seed: int = 0,
                      extra_ignored: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Eq. 10 table, the long per-seed pairs table, and notes (duplicates etc.).

    improvement: one row per QCBM setting plus one per Bernoulli group without any QCBM setting (columns:
    schema.IMPROVEMENT_COLUMNS). pairs: one row per paired (setting, seed) (schema.PAIRS_COLUMNS).
    The bootstrap uses numpy.random.default_rng([seed, int(setting_id, 16)]) per setting, so a setting's CI
    does not depend on the other settings of the run."""
    t = col.trials
    notes: list[str] = []
    cfg_of = {tid: c for tid, c in col.configs.items() if c}
    t = t[t["trial_id"].isin(list(cfg_of))]
    model = (t["model"].astype(object) if "model" in t.columns
             else pd.Series([None] * len(t), index=t.index, dtype=object))
    if "seed" not in t.columns:
        raise ValueError("no trial config holds a 'seed' field; cannot pair trials")
    q_trials = t[(model == "qcbm").to_numpy(dtype=bool)]
    b_trials = t[(model == "bernoulli").to_numpy(dtype=bool)]

    # representative setting dicts
    def rep_setting(rows: pd.DataFrame) -> dict[str, Any]:
        cfg = cfg_of[str(rows["trial_id"].iloc[0])]
        return {k: v for k, v in setting_fields(cfg).items()}

    q_settings = {sid: rep_setting(g) for sid, g in q_trials.groupby("setting_id", sort=False)}
    b_pairs = {pk: pair_fields(cfg_of[str(g["trial_id"].iloc[0])], extra_ignored)
               for pk, g in b_trials.groupby("pair_key", sort=False)}
    q_pairs = {pk: pair_fields(cfg_of[str(g["trial_id"].iloc[0])], extra_ignored)
               for pk, g in q_trials.groupby("pair_key", sort=False)}
    all_settings = list(q_settings.values())
    for pk, g in b_trials.groupby("pair_key", sort=False):
        if pk not in q_pairs:
            all_settings.append(rep_setting(g))
    varying = _varying_fields([{k: v for k, v in s.items() if k != "model"} for s in all_settings])

    rows: list[dict[str, Any]] = []
    pair_rows: list[dict[str, Any]] = []
    for sid, setting in q_settings.items():
        qg = q_trials[q_trials["setting_id"] == sid]
        pk = str(qg["pair_key"].iloc[0])
        bg = b_trials[b_trials["pair_key"] == pk]
        row = _base_row(sid, pk, setting, varying)
        qu, bu = qg[qg["usable"]], bg[bg["usable"]]
        q_seed, b_seed = _per_seed(qu), _per_seed(bu)
        for side, g in (("Bernoulli", bu), ("QCBM", qu)):
            dup = g.groupby("seed").size()
            if side == "QCBM" and (dup > 1).any():
                notes.append(f"setting {sid}: {int((dup > 1).sum())} seed(s) with several usable QCBM trials "
                             "(averaged per seed)")
        row["n_seeds_qcbm"], row["n_seeds_bernoulli"] = len(q_seed), len(b_seed)
        row["n_excluded"] = int((~qg["usable"]).sum() + (~bg["usable"]).sum())
        common = sorted(set(q_seed) & set(b_seed))
        if len(bg) == 0:
            row["pair_status"] = "no_bernoulli"
            row["unpaired_reason"] = ("no Bernoulli trial with the same setting (apart from QCBM-only fields); "
                                      + _closest(q_pairs[pk], b_pairs))
        elif not q_seed:
            row["pair_status"] = "no_completed_qcbm"
            row["unpaired_reason"] = f"none of the {len(qg)} QCBM trial(s) of this setting is usable"
        elif not b_seed:
            row["pair_status"] = "no_completed_bernoulli"
            row["unpaired_reason"] = f"none of the {len(bg)} partner Bernoulli trial(s) is usable"
        elif not common:
            row["pair_status"] = "no_common_seed"
            row["unpaired_reason"] = (f"QCBM seeds {sorted(q_seed)} and Bernoulli seeds {sorted(b_seed)} "
                                      "have none in common")
        else:
            row["pair_status"] = "paired"
            _fill_paired(row, common, b_seed, q_seed, resamples, confidence, seed)
            for s in common:
                pair_rows.append({"setting_id": sid, "phase": setting.get("phase"), "seed": s,
                                  "trial_id_b": b_seed[s]["trial_id"], "trial_id_q": q_seed[s]["trial_id"],
                                  "mmd_b": b_seed[s]["mmd"], "mmd_q": q_seed[s]["mmd"],
                                  "diff": b_seed[s]["mmd"] - q_seed[s]["mmd"],
                                  "ri": stats.relative_improvement(b_seed[s]["mmd"], q_seed[s]["mmd"])})
        rows.append(row)
    for pk, bg in b_trials.groupby("pair_key", sort=False):
        if pk in q_pairs:
            continue
        setting = rep_setting(bg)
        setting = {k: (None if k in schema.QCBM_ONLY_FIELDS else v) for k, v in setting.items()}
        bsid = str(bg["setting_id"].iloc[0])
        row = _base_row(bsid, str(pk), setting, varying)
        row["pair_status"] = "no_qcbm"
        row["unpaired_reason"] = ("no QCBM setting matches this Bernoulli group; "
                                  + _closest(b_pairs[pk], q_pairs))
        row["n_seeds_bernoulli"] = len(_per_seed(bg[bg["usable"]]))
        row["n_excluded"] = int((~bg["usable"]).sum())
        rows.append(row)

    imp = _frame(rows, col)
    pairs = pd.DataFrame(pair_rows, columns=[c for c, _, _ in schema.PAIRS_COLUMNS])
    for c, dt, _ in schema.PAIRS_COLUMNS:
        pairs[c] = pairs[c].astype("string" if dt == "string" else dt)
    schema.check_columns(imp, "improvement.parquet")
    return imp, pairs, notes


def _base_row(sid: str, pk: str, setting: dict[str, Any], varying: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"setting_id": sid, "pair_key": pk, "label": make_label(setting, varying),
                           "pair_status": None, "unpaired_reason": None}
    row.update({f"__cfg__{k}": v for k, v in setting.items()})
    row.update({"n_seeds": 0, "n_seeds_bernoulli": 0, "n_seeds_qcbm": 0, "n_excluded": 0, "seeds": [],
                "mmd_b_seeds": [], "mmd_q_seeds": [], "diff_seeds": [], "mmd_b": math.nan, "mmd_q": math.nan,
                "mmd_b_last500": math.nan, "mmd_q_last500": math.nan, "ri": math.nan, "ri_ci_low": math.nan,
                "ri_ci_high": math.nan, "qcbm_wins": None, "wilcoxon_stat": math.nan, "wilcoxon_p": math.nan,
                "test_note": None, "mmd_floor": math.nan})
    return row


def _fill_paired(row: dict[str, Any], common: list[int], b_seed: dict, q_seed: dict, resamples: int,
                 confidence: float, seed: int) -> None:
    b = np.array([b_seed[s]["mmd"] for s in common])
    q = np.array([q_seed[s]["mmd"] for s in common])
    row["n_seeds"] = len(common)
    row["seeds"] = list(common)
    row["mmd_b_seeds"], row["mmd_q_seeds"] = b.tolist(), q.tolist()
    row["diff_seeds"] = (b - q).tolist()
    row["mmd_b"], row["mmd_q"] = float(b.mean()), float(q.mean())
    row["mmd_b_last500"] = float(np.nanmean([b_seed[s]["mmd500"] for s in common]))
    row["mmd_q_last500"] = float(np.nanmean([q_seed[s]["mmd500"] for s in common]))
    row["ri"] = stats.relative_improvement(row["mmd_b"], row["mmd_q"])
    rng = np.random.default_rng([int(seed), int(row["setting_id"], 16)])
    row["ri_ci_low"], row["ri_ci_high"] = stats.bootstrap_ri(b, q, rng, resamples, confidence)
    row["qcbm_wins"] = bool(row["ri"] > 0) if math.isfinite(row["ri"]) else None
    row["wilcoxon_stat"], row["wilcoxon_p"], row["test_note"] = stats.wilcoxon_paired(b - q)
    if len(common) < 2:
        row["test_note"] = f"only {len(common)} paired seed: no confidence interval, no test"
    floors = np.concatenate([np.atleast_1d(d[s]["floor"]) for d in (b_seed, q_seed) for s in common])
    floors = floors[np.isfinite(floors)]
    row["mmd_floor"] = float(floors.mean()) if len(floors) else math.nan


def _frame(rows: list[dict[str, Any]], col: Collected) -> pd.DataFrame:
    fixed = [c for c in schema.fixed_columns("improvement.parquet")]
    cfg_keys: list[str] = []
    for r in rows:
        cfg_keys += [k for k in r if k.startswith("__cfg__") and k not in cfg_keys]
    head = ["setting_id", "pair_key", "label", "pair_status", "unpaired_reason"]
    records = []
    for r in rows:
        rec = {k: r.get(k) for k in head}
        for k in cfg_keys:
            rec[config_column(k[len("__cfg__"):])] = r.get(k)
        rec.update({k: r.get(k) for k in fixed if k not in head})
        records.append(rec)
    cfg_cols = [config_column(k[len("__cfg__"):]) for k in cfg_keys]
    cols = head + cfg_cols + [k for k in fixed if k not in head]
    df = pd.DataFrame.from_records(records, columns=cols)
    from .collect import _arrow_safe

    df = _arrow_safe(df, cfg_cols)
    for c, dt, _ in schema.IMPROVEMENT_COLUMNS:
        if c == schema.CONFIG_PLACEHOLDER:
            continue
        if dt == "string":
            df[c] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                              for v in df[c].tolist()], dtype="string")
        elif dt == "int64":
            df[c] = df[c].astype("int64")
        elif dt == "float64":
            df[c] = df[c].astype("float64")
        elif dt in ("bool", "boolean"):
            df[c] = pd.array(df[c].tolist(), dtype="boolean")
    sort = [c for c in SORT_FIELDS if c in df.columns] + ["label"]
    order = df["pair_status"].ne("paired")
    df = df.assign(_unp=order).sort_values(["_unp", *sort], kind="stable", na_position="last")
    return df.drop(columns="_unp").reset_index(drop=True)


def per_setting_key(cfg: dict[str, Any]) -> str:
    """setting_id of a config (same as trials.parquet)."""
    return key_id(setting_fields(cfg))
