"""Eq. 10 per paired setting for each comparison of the three arms: pair trials seed by seed, average,
bootstrap, test.

Comparisons (schema.COMPARISONS): qcbm_vs_bernoulli (the paper's Eq. 10), qcbm_vs_product (the quantum
question) and product_vs_bernoulli; for "A_vs_B", RI = (MMD_B - MMD_A) / MMD_A (positive = A better).
Pairing: an arm-A setting is paired with the arm-B trials whose config agrees with it in every field except
`model`, the bookkeeping fields and every field that either arm ignores (schema.comparison_ignored; `n` and
`latent_pool` are kept); within the pair, trials are matched by `seed`. Only usable trials (collect.py) enter;
a setting without a partner, or without a seed in common, gets a row with its `pair_status` and a plain-words
`unpaired_reason`. A comparison appears only when the run holds trials of both its arms (qcbm_vs_bernoulli also
when it holds one of them: its `no_<arm>` rows), so a run with only Bernoulli and QCBM trials gives exactly the
qcbm_vs_bernoulli rows.

Independence: several arm-A settings can share one partner group (e.g. QCBM settings that differ only in
`update_every` all pair with the same Bernoulli trials). Each row's `stratum` names the values of the fields
that tell such settings apart; within one stratum every partner group occurs at most once, which is what
the pooled win rates (winrate.py) count.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import schema, stats
from .collect import Collected, comparison_fields, config_column, key_id, setting_fields

ALIASES = {"train_size": "T", "epochs": "E", "update_every": "upd", "qcbm_optimizer": "opt",
           "connectivity": "conn", "layers": "L", "batch_size": "bs", "qcbm_lr": "eta", "fd_eps": "eps",
           "backend": "be", "qcbm_epochs": "qE"}
SORT_FIELDS = ("phase", "n", "train_size", "epochs", "update_every")


def _varying_fields(configs: list[dict[str, Any]]) -> list[str]:
    """Fields that take more than one value among the configs that hold them."""
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c if k not in keys]
    out = []
    for k in keys:
        vals = {repr(c[k]) for c in configs if k in c}
        if len(vals) > 1:
            out.append(k)
    return out


def make_label(cfg: dict[str, Any], varying: list[str], skip: tuple[str, ...] = ()) -> str:
    """'ferrite n=4 T=64 upd=10' from the setting's phase, n and the other fields that vary in the run
    (fields in `skip`, e.g. those the row's arm ignores, are left out)."""
    parts = [str(cfg.get("phase", "?")), f"n={cfg.get('n', '?')}"]
    for k in varying:
        if k in ("phase", "n", "model") or k in skip:
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


ABSENT = "(absent)"


def _stratum_value(setting: dict[str, Any], field: str) -> str:
    return f"{field}={setting[field]}" if field in setting else f"{field}={ABSENT}"


def assign_strata(rows: list[dict[str, Any]], settings: dict[str, dict[str, Any]], drop: tuple[str, ...],
                  ignored_by_a: tuple[str, ...] = ()) -> list[str]:
    """Set row["stratum"] for the arm-A rows of one comparison; returns the stratifying fields.

    The stratifying fields are the dropped (pairing-ignored) fields whose value differs between two paired
    arm-A settings of the same partner group, those that arm A reads first (schema order); fields arm A
    ignores (e.g. circuit fields of product settings) are added only where settings of one partner group
    differ in nothing else. A stratum is one combination of their values (`all` when there is none); two
    paired settings of one partner group always differ in a stratifying field, so a stratum holds every
    partner group at most once."""
    paired = [r for r in rows if r["pair_status"] == "paired"]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for r in paired:
        by_group.setdefault(r["pair_key"], []).append(r)

    def varies(f: str, groups: list[list[dict[str, Any]]]) -> bool:
        return any(len({_stratum_value(settings[r["setting_id"]], f) for r in g}) > 1 for g in groups)

    def key(r: dict[str, Any], fields: list[str]) -> tuple[str, ...]:
        return tuple(_stratum_value(settings[r["setting_id"]], f) for f in fields)

    groups = list(by_group.values())
    fields = [f for f in drop if f not in ignored_by_a and varies(f, groups)]
    # groups where two settings still share every value: split them by the fields arm A ignores
    clash = [g for g in groups if len({key(r, fields) for r in g}) < len({r["setting_id"] for r in g})]
    fields += [f for f in drop if f in ignored_by_a and varies(f, clash)]
    fields = [f for f in drop if f in fields]
    for r in rows:
        r["stratum"] = ", ".join(key(r, fields)) if fields else "all"
    seen: dict[tuple[str, str], str] = {}
    for r in paired:   # guard: should never trigger (see the docstring); keep the count honest if it does
        k = (r["stratum"], r["pair_key"])
        if k in seen and seen[k] != r["setting_id"]:
            r["stratum"] = f"{r['stratum']}, setting={r['setting_id']}"
        seen.setdefault(k, r["setting_id"])
    return fields


def improvement_table(col: Collected, resamples: int = 10000, confidence: float = 0.95, seed: int = 0,
                      extra_ignored: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Eq. 10 table, the long per-seed pairs table, and notes (duplicates etc.).

    improvement: per comparison one row per arm-A setting plus one per arm-B partner group without any arm-A
    setting (columns: schema.IMPROVEMENT_COLUMNS). pairs: one row per paired (comparison, setting, seed)
    (schema.PAIRS_COLUMNS). The bootstrap uses numpy.random.default_rng([seed, int(setting_id, 16), c]) per
    setting, c the comparison's index in schema.COMPARISONS, so a setting's CI does not depend on the other
    settings of the run. `extra_ignored` fields are dropped from every pairing key."""
    t = col.trials
    notes: list[str] = []
    cfg_of = {tid: c for tid, c in col.configs.items() if c}
    t = t[t["trial_id"].isin(list(cfg_of))]
    if "seed" not in t.columns:
        raise ValueError("no trial config holds a 'seed' field; cannot pair trials")
    model = (t["model"].astype(object) if "model" in t.columns
             else pd.Series([None] * len(t), index=t.index, dtype=object))
    present = {m for m in model.tolist() if isinstance(m, str)}

    def rep_setting(rows: pd.DataFrame) -> dict[str, Any]:
        return dict(setting_fields(cfg_of[str(rows["trial_id"].iloc[0])]))

    # fields that vary among what the arms actually read (labels)
    eff = {}
    for cfg in cfg_of.values():
        m = cfg.get(schema.MODEL_FIELD)
        ign = set(schema.ignored_fields(m)) | {schema.MODEL_FIELD}
        eff[key_id(setting_fields(cfg))] = {k: v for k, v in setting_fields(cfg).items() if k not in ign}
    varying = _varying_fields(list(eff.values()))

    rows: list[dict[str, Any]] = []
    pair_rows: list[dict[str, Any]] = []
    for ci, (cmp_name, arm_a, arm_b) in enumerate(schema.COMPARISONS):
        # a comparison needs trials of both arms; the paper's (index 0) also reports one arm alone, as before
        if not ((arm_a in present and arm_b in present) or (ci == 0 and (arm_a in present or arm_b in present))):
            continue
        name_a, name_b = schema.ARM_NAMES[arm_a], schema.ARM_NAMES[arm_b]
        drop = schema.comparison_ignored(arm_a, arm_b) + tuple(f for f in extra_ignored
                                                              if f not in schema.comparison_ignored(arm_a, arm_b))
        ta = t[(model == arm_a).to_numpy(dtype=bool)]
        tb = t[(model == arm_b).to_numpy(dtype=bool)]
        kf = {tid: comparison_fields(cfg_of[tid], arm_a, arm_b, extra_ignored)
              for tid in pd.concat([ta["trial_id"], tb["trial_id"]]).astype(str)}
        kid = {tid: key_id(f) for tid, f in kf.items()}
        ta = ta.assign(_key=[kid[str(x)] for x in ta["trial_id"]])
        tb = tb.assign(_key=[kid[str(x)] for x in tb["trial_id"]])
        a_keys = {pk: kf[str(g["trial_id"].iloc[0])] for pk, g in ta.groupby("_key", sort=False)}
        b_keys = {pk: kf[str(g["trial_id"].iloc[0])] for pk, g in tb.groupby("_key", sort=False)}
        settings: dict[str, dict[str, Any]] = {}
        cmp_rows: list[dict[str, Any]] = []
        for pk, bg in tb.groupby("_key", sort=False):
            dup = bg[bg["usable"]].groupby("seed").size()
            if (dup > 1).any():
                notes.append(f"{cmp_name}: partner group {pk}: {int((dup > 1).sum())} seed(s) with several usable "
                             f"{name_b} trials (averaged per seed)")
        for sid, ag in ta.groupby("setting_id", sort=False):
            sid = str(sid)
            setting = rep_setting(ag)
            settings[sid] = setting
            pk = str(ag["_key"].iloc[0])
            bg = tb[tb["_key"] == pk]
            row = _base_row(cmp_name, arm_a, arm_b, sid, pk, setting, varying, schema.ignored_fields(arm_a))
            au, bu = ag[ag["usable"]], bg[bg["usable"]]
            a_seed, b_seed = _per_seed(au), _per_seed(bu)
            dup = au.groupby("seed").size()
            if (dup > 1).any():
                notes.append(f"{cmp_name}: setting {sid}: {int((dup > 1).sum())} seed(s) with several usable "
                             f"{name_a} trials (averaged per seed)")
            row["n_seeds_a"], row["n_seeds_b"] = len(a_seed), len(b_seed)
            row["n_excluded"] = int((~ag["usable"]).sum() + (~bg["usable"]).sum())
            row["trial_ids_a"] = au["trial_id"].astype(str).tolist()
            row["trial_ids_b"] = bu["trial_id"].astype(str).tolist()
            common = sorted(set(a_seed) & set(b_seed))
            if len(bg) == 0:
                row["pair_status"] = f"no_{arm_b}"
                row["unpaired_reason"] = (f"no {name_b} trial with the same setting (apart from the fields "
                                          f"{name_a} or {name_b} ignores); " + _closest(a_keys[pk], b_keys))
            elif not a_seed:
                row["pair_status"] = f"no_completed_{arm_a}"
                row["unpaired_reason"] = f"none of the {len(ag)} {name_a} trial(s) of this setting is usable"
            elif not b_seed:
                row["pair_status"] = f"no_completed_{arm_b}"
                row["unpaired_reason"] = f"none of the {len(bg)} partner {name_b} trial(s) is usable"
            elif not common:
                row["pair_status"] = "no_common_seed"
                row["unpaired_reason"] = (f"{name_a} seeds {sorted(a_seed)} and {name_b} seeds {sorted(b_seed)} "
                                          "have none in common")
            else:
                row["pair_status"] = "paired"
                _fill_paired(row, common, b_seed, a_seed, resamples, confidence, seed, ci)
                for s in common:
                    mb, ma = b_seed[s]["mmd"], a_seed[s]["mmd"]
                    pair_rows.append({"comparison": cmp_name, "arm_a": arm_a, "arm_b": arm_b, "setting_id": sid,
                                      "pair_key": pk, "phase": setting.get("phase"), "seed": s,
                                      "trial_id_a": a_seed[s]["trial_id"], "trial_id_b": b_seed[s]["trial_id"],
                                      "mmd_a": ma, "mmd_b": mb, "diff": mb - ma,
                                      "ri": stats.relative_improvement(mb, ma),
                                      "log_ratio": math.log(mb) - math.log(ma) if ma > 0 and mb > 0 else math.nan})
            cmp_rows.append(row)
        assign_strata(cmp_rows, settings, drop, schema.ignored_fields(arm_a))
        for pk, bg in tb.groupby("_key", sort=False):
            if pk in a_keys:
                continue
            setting = rep_setting(bg)
            setting = {k: (None if k in drop else v) for k, v in setting.items()}
            bsid = str(bg["setting_id"].iloc[0])
            row = _base_row(cmp_name, arm_a, arm_b, bsid, str(pk), setting, varying, drop)
            row["pair_status"] = f"no_{arm_a}"
            row["unpaired_reason"] = (f"no {name_a} setting matches this {name_b} group; "
                                      + _closest(b_keys[pk], a_keys))
            bu = bg[bg["usable"]]
            row["n_seeds_b"] = len(_per_seed(bu))
            row["trial_ids_b"] = bu["trial_id"].astype(str).tolist()
            row["n_excluded"] = int((~bg["usable"]).sum())
            row["stratum"] = None
            cmp_rows.append(row)
        rows += cmp_rows

    imp = _frame(rows, col)
    pairs = pd.DataFrame(pair_rows, columns=[c for c, _, _ in schema.PAIRS_COLUMNS])
    for c, dt, _ in schema.PAIRS_COLUMNS:
        pairs[c] = pairs[c].astype("string" if dt == "string" else dt)
    schema.check_columns(imp, "improvement.parquet")
    return imp, pairs, notes


def _base_row(cmp_name: str, arm_a: str, arm_b: str, sid: str, pk: str, setting: dict[str, Any],
              varying: list[str], skip: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"comparison": cmp_name, "arm_a": arm_a, "arm_b": arm_b, "setting_id": sid,
                           "pair_key": pk, "label": make_label(setting, varying, skip),
                           "pair_status": None, "unpaired_reason": None}
    row.update({f"__cfg__{k}": v for k, v in setting.items()})
    row.update({"stratum": None, "n_seeds": 0, "n_seeds_a": 0, "n_seeds_b": 0, "n_excluded": 0,
                "trial_ids_a": [], "trial_ids_b": [], "seeds": [], "mmd_a_seeds": [], "mmd_b_seeds": [],
                "diff_seeds": [], "mmd_a": math.nan, "mmd_b": math.nan, "mmd_a_last500": math.nan,
                "mmd_b_last500": math.nan, "ri": math.nan, "ri_ci_low": math.nan, "ri_ci_high": math.nan,
                "ri_ci_method": None, "a_wins": None, "outcome": None, "log_ratio_mean": math.nan,
                "log_ratio_ci_low": math.nan, "log_ratio_ci_high": math.nan, "t_stat": math.nan, "t_p": math.nan,
                "sign_a_better": 0, "sign_b_better": 0, "sign_p": math.nan, "wilcoxon_stat": math.nan,
                "wilcoxon_p": math.nan, "underpowered": None, "test_note": None, "mmd_floor": math.nan,
                "mmd_floor_sd": math.nan})
    return row


def _fill_paired(row: dict[str, Any], common: list[int], b_seed: dict, a_seed: dict, resamples: int,
                 confidence: float, seed: int, comparison_index: int) -> None:
    b = np.array([b_seed[s]["mmd"] for s in common])
    a = np.array([a_seed[s]["mmd"] for s in common])
    k = len(common)
    row["n_seeds"] = k
    row["seeds"] = list(common)
    row["mmd_a_seeds"], row["mmd_b_seeds"] = a.tolist(), b.tolist()
    row["diff_seeds"] = (b - a).tolist()
    row["mmd_a"], row["mmd_b"] = float(a.mean()), float(b.mean())
    row["mmd_a_last500"] = float(np.nanmean([a_seed[s]["mmd500"] for s in common]))
    row["mmd_b_last500"] = float(np.nanmean([b_seed[s]["mmd500"] for s in common]))
    row["ri"] = stats.relative_improvement(row["mmd_b"], row["mmd_a"])
    rng = np.random.default_rng([int(seed), int(row["setting_id"], 16), int(comparison_index)])
    ci = stats.bootstrap_ri_ci(b, a, rng, resamples, confidence)
    row["ri_ci_low"], row["ri_ci_high"], row["ri_ci_method"] = ci.low, ci.high, ci.method
    row["a_wins"] = bool(row["ri"] > 0) if math.isfinite(row["ri"]) else None
    row["outcome"] = stats.outcome(ci.low, ci.high)
    lt = stats.paired_log_t(b, a, confidence)
    row.update({"log_ratio_mean": lt.mean, "log_ratio_ci_low": lt.ci_low, "log_ratio_ci_high": lt.ci_high,
                "t_stat": lt.t, "t_p": lt.p})
    row["sign_a_better"], row["sign_b_better"] = int((b > a).sum()), int((b < a).sum())
    row["sign_p"] = stats.sign_test(row["sign_a_better"], row["sign_b_better"])
    row["wilcoxon_stat"], row["wilcoxon_p"], wnote = stats.wilcoxon_paired(b - a)
    row["underpowered"], unote = stats.underpowered(k)
    test_notes = [unote] if unote else ([wnote] if wnote else [])
    if unote and wnote and "too few" in wnote:
        test_notes.append(wnote)
    test_notes += [n for n in (ci.note, lt.note) if n and not (k < 2 and n.startswith("only"))]
    if k < 2:
        test_notes.insert(0, f"only {k} paired seed: no confidence interval, no test")
    row["test_note"] = "; ".join(test_notes) if test_notes else None
    floors = np.concatenate([np.atleast_1d(d[s]["floor"]) for d in (b_seed, a_seed) for s in common])
    floors = floors[np.isfinite(floors)]
    row["mmd_floor"] = float(floors.mean()) if len(floors) else math.nan
    row["mmd_floor_sd"] = float(floors.std(ddof=1)) if len(floors) > 1 else math.nan


def _frame(rows: list[dict[str, Any]], col: Collected) -> pd.DataFrame:
    names = [c for c, _, _ in schema.IMPROVEMENT_COLUMNS]
    cut = names.index(schema.CONFIG_PLACEHOLDER)
    head, tail = names[:cut], names[cut + 1:]
    cfg_keys: list[str] = []
    for r in rows:
        cfg_keys += [k for k in r if k.startswith("__cfg__") and k not in cfg_keys]
    records = []
    for r in rows:
        rec = {k: r.get(k) for k in head}
        for k in cfg_keys:
            rec[config_column(k[len("__cfg__"):])] = r.get(k)
        rec.update({k: r.get(k) for k in tail})
        records.append(rec)
    cfg_cols = [config_column(k[len("__cfg__"):]) for k in cfg_keys]
    cols = head + cfg_cols + tail
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
    order = {name: i for i, (name, _, _) in enumerate(schema.COMPARISONS)}
    sort = [c for c in SORT_FIELDS if c in df.columns] + ["label"]
    df = df.assign(_cmp=[order.get(str(c), 99) for c in df["comparison"]], _unp=df["pair_status"].ne("paired"))
    df = df.sort_values(["_cmp", "_unp", *sort], kind="stable", na_position="last")
    return df.drop(columns=["_cmp", "_unp"]).reset_index(drop=True)


def per_setting_key(cfg: dict[str, Any]) -> str:
    """setting_id of a config (same as trials.parquet)."""
    return key_id(setting_fields(cfg))
