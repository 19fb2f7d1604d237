"""Collect every trial of a run directory into two tables: trials (one row per trial) and epochs.

A trial folder is any folder below RUN_DIR holding `config.json` (docs/interfaces.md: config.json beside
summary.json, epochs.parquet, optional samples.npz). Nothing is trusted blindly: the final-100/500-epoch MMD
means are recomputed from epochs.parquet, and a trial is `usable` only when its summary says `completed`,
its epochs.parquet is readable, holds every planned epoch and has an evaluated MMD in the final window.
Unusable trials stay in the trials table with the reason in `problem`; they never enter the statistics.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qgan.results import key_id, normalize_value, pair_fields, setting_fields  # noqa: F401  (the one identity)

from . import schema

STATUS_RANK = {"completed": 0, "running": 1, "failed": 2, "missing_summary": 3, "unreadable": 4}


@dataclass
class Collected:
    """Result of `collect`: the two tables plus each trial's normalised config (by trial_id)."""

    run_dir: Path
    trials: pd.DataFrame
    epochs: pd.DataFrame
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- config keys
def comparison_fields(config: dict[str, Any], arm_a: str, arm_b: str,
                      extra_ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pairing key of comparison A_vs_B: the setting minus `model`, every field that either arm ignores
    (schema.comparison_ignored) and `extra_ignored`. A field missing from a config is simply absent, so a
    config without it and one that lacks it too give the same key."""
    drop = set(schema.comparison_ignored(arm_a, arm_b)) | {schema.MODEL_FIELD} | set(extra_ignored)
    return {k: v for k, v in setting_fields(config).items() if k not in drop}


# ------------------------------------------------------------------------------------------------ windows
def window_means(epoch: np.ndarray, mmd: np.ndarray) -> dict[str, float]:
    """Final-window statistics of an MMD curve.

    epoch: (E,) 1-based epochs; mmd: (E,) with NaN where not evaluated. Window w = min(W, last epoch) for
    W = 100, 500: mean of the evaluated MMD in epochs > last - w (paper §5.1, Eq. 10 input).
    """
    out = {"mmd_last100": math.nan, "mmd_last500": math.nan, "mmd_final": math.nan, "mmd_min": math.nan}
    if len(epoch) == 0:
        return out
    last = int(np.max(epoch))
    finite = np.isfinite(mmd)
    for w, name in ((schema.LAST_SHORT, "mmd_last100"), (schema.LAST_LONG, "mmd_last500")):
        sel = finite & (epoch > last - min(w, last))
        if sel.any():
            out[name] = float(np.mean(mmd[sel]))
    if finite.any():
        order = np.argsort(epoch[finite], kind="stable")
        out["mmd_final"] = float(mmd[finite][order][-1])
        out["mmd_min"] = float(np.min(mmd[finite]))
    return out


def rolling_mmd(mmd: pd.Series, epochs: int) -> pd.Series:
    """NaN-aware rolling mean over min(100, epochs) rows (the paper's solid 100-epoch curve)."""
    w = max(1, min(schema.LAST_SHORT, int(epochs)))
    return mmd.rolling(w, min_periods=1).mean()


# ------------------------------------------------------------------------------------------------ reading
def find_trial_dirs(run_dir: Path, exclude: Path | None = None) -> list[Path]:
    """Folders below `run_dir` holding config.json (sorted); does not descend into `exclude` or hidden dirs."""
    found: list[Path] = []
    excl = exclude.resolve() if exclude is not None else None
    for root, dirs, files in os.walk(run_dir):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                         and (excl is None or (rootp / d).resolve() != excl))
        if "config.json" in files:
            found.append(rootp)
            if "summary.json" in files:
                dirs[:] = []          # a trial folder: its subfolders are checkpoints etc.
    return found


#: Files of a trial folder (docs/interfaces.md) and of an analysis output folder, to name a wrong path.
TRIAL_FILES = ("config.json", "summary.json", "epochs.parquet", "samples.npz", "samples.png")
OUTPUT_FILES = ("report.md", "trials.parquet", "improvement.parquet")
WANTED = "a run folder (trial folders with config.json and summary.json anywhere below it)"


def check_run_dir(run: Path) -> None:
    """Raise a one-line error unless `run` is an existing folder: FileNotFoundError, or ValueError for a file."""
    if run.is_dir():
        return
    if not run.exists():
        raise FileNotFoundError(f"run directory {str(run)!r} does not exist; expected {WANTED}")
    hint = (f"; did you mean its folder {str(run.parent)!r}?" if run.name in TRIAL_FILES + OUTPUT_FILES
            else "")
    raise ValueError(f"{str(run)!r} is a file, not a run folder; expected {WANTED}{hint}")


def no_trial_message(run: Path) -> str:
    """Why `run` (a folder) holds no trial folder, in one line."""
    if any((run / f).is_file() for f in OUTPUT_FILES):
        return (f"{str(run)!r} is an analysis output folder (report.md, *.parquet), not a run; give the run "
                "folder it was made from")
    if (run / "summary.json").is_file() or (run / "epochs.parquet").is_file():
        return (f"{str(run)!r} looks like a trial folder without config.json; expected {WANTED}")
    items = list(run.iterdir())
    what = "it is empty" if not items else f"it holds {len(items)} other entr{'y' if len(items) == 1 else 'ies'}"
    return (f"no trial folder (a folder with config.json and summary.json) anywhere below {str(run)!r}: {what}; "
            "expected a run folder, e.g. a sweep's <storage>/<name>")


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _last_finite(epochs: pd.DataFrame | None, col: str) -> tuple[float, int | None]:
    """(last finite value of `col`, its row position) in an epoch-sorted frame; (nan, None) if none."""
    if epochs is None or col not in epochs.columns or not len(epochs):
        return math.nan, None
    vals = pd.to_numeric(epochs[col], errors="coerce").to_numpy(dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(vals))
    if not len(idx):
        return math.nan, None
    return float(vals[idx[-1]]), int(idx[-1])


def _optional_trial_values(summary: dict[str, Any], epochs: pd.DataFrame | None) -> dict[str, Any]:
    """Diversity and final prior diagnostics of a trial (NaN / NA where the files do not carry them)."""
    out: dict[str, Any] = {}
    div = _num(summary, "diversity_final")
    if not math.isfinite(div):
        div = _last_finite(epochs, "diversity")[0]
    out["diversity_final"] = div
    out["diversity_real"] = _num(summary, "diversity_real")
    last_pos: int | None = None
    for c in schema.PRIOR_DIAGNOSTIC_COLUMNS:
        v, pos = _last_finite(epochs, c)
        out[f"{c}_final"] = v
        if pos is not None and c.startswith("prior_"):
            last_pos = pos if last_pos is None else max(last_pos, pos)
    exact: Any = pd.NA
    if epochs is not None and "prior_exact" in epochs.columns and last_pos is not None:
        v = epochs["prior_exact"].iloc[last_pos]
        exact = pd.NA if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else bool(v)
    out["prior_exact_final"] = exact
    return out


def _empty_optional() -> dict[str, Any]:
    return _optional_trial_values({}, None)


def _num(d: dict[str, Any], key: str) -> float:
    v = d.get(key)
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def read_trial(folder: Path, run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame | None]:
    """Read one trial folder -> (row of trials.parquet without config columns, normalised config, epochs).

    Never raises on bad files: problems go into row["problem"] and make the trial unusable.
    """
    rel = folder.relative_to(run_dir).as_posix() if folder != run_dir else "."
    row: dict[str, Any] = {"trial_id": rel, "path": rel, "status": "unreadable", "usable": False,
                           "problem": None, "failure_reason": None, "epochs_completed": 0, "last_epoch": 0,
                           **window_means(np.zeros(0), np.zeros(0)), "summary_mmd_last100": math.nan,
                           "summary_mmd_last500": math.nan, "mmd_mismatch": False, "mmd_floor": math.nan,
                           "circuit_calls": 0, "seconds": math.nan,
                           "has_samples": (folder / "samples.npz").exists(), "latent_pool_used": False,
                           **_empty_optional()}
    problems: list[str] = []
    config: dict[str, Any] = {}
    try:
        config = {k: normalize_value(v) for k, v in _read_json(folder / "config.json").items()}
    except (OSError, ValueError) as exc:
        row["problem"] = f"config.json unreadable: {exc}"
        return row, {}, None
    if config.get("trial_id") is not None:
        row["trial_id"] = str(config["trial_id"])
    config["trial_id"] = row["trial_id"]
    row["latent_pool_used"] = schema.uses_latent_pool(config)

    summary: dict[str, Any] = {}
    spath = folder / "summary.json"
    if not spath.exists():
        row["status"] = "missing_summary"
        problems.append("no summary.json")
    else:
        try:
            summary = _read_json(spath)
            row["status"] = str(summary.get("status") or "unknown")
        except (OSError, ValueError) as exc:
            row["status"] = "unreadable"
            problems.append(f"summary.json unreadable: {exc}")
    if summary.get("latent_pool_size") is not None:  # the trainer says what G was fed from; else the config rule
        row["latent_pool_used"] = int(summary["latent_pool_size"]) > 0
    row["failure_reason"] = summary.get("failure_reason")
    if row["status"] == "failed":
        problems.append(f"failed: {summary.get('failure_reason') or 'no reason given'}")
    elif row["status"] not in ("completed",) and not problems:
        problems.append(f"status {row['status']!r}")

    epochs: pd.DataFrame | None = None
    epath = folder / "epochs.parquet"
    if epath.exists():
        try:
            epochs = pd.read_parquet(epath)
            missing = [c for c in ("epoch", "mmd") if c not in epochs.columns]
            if missing:
                problems.append(f"epochs.parquet lacks columns {missing}")
                epochs = None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            problems.append(f"epochs.parquet unreadable: {type(exc).__name__}: {exc}")
            epochs = None
    else:
        problems.append("no epochs.parquet")

    if epochs is not None:
        try:
            epochs = epochs.sort_values("epoch", kind="stable").reset_index(drop=True)
            ep = epochs["epoch"].to_numpy(dtype=np.int64)
            mmd = pd.to_numeric(epochs["mmd"], errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as exc:
            problems.append(f"epochs.parquet has bad epoch/mmd values: {exc}")
            epochs = None
    if epochs is not None:
        row["epochs_completed"] = int(len(epochs))
        row["last_epoch"] = int(ep.max()) if len(ep) else 0
        row.update(window_means(ep, mmd))
    else:
        row["epochs_completed"] = 0
        row["last_epoch"] = 0
        row.update(window_means(np.zeros(0), np.zeros(0)))

    row["summary_mmd_last100"] = _num(summary, "mmd_last100")
    row["summary_mmd_last500"] = _num(summary, "mmd_last500")
    mism = False
    for a, b in (("mmd_last100", "summary_mmd_last100"), ("mmd_last500", "summary_mmd_last500")):
        x, y = row[a], row[b]
        if math.isfinite(x) and math.isfinite(y) and not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12):
            mism = True
    row["mmd_mismatch"] = mism
    row["mmd_floor"] = _num(summary, "mmd_floor")
    calls = summary.get("circuit_calls")
    if calls is None and epochs is not None and "circuit_calls" in epochs and len(epochs):
        calls = epochs["circuit_calls"].iloc[-1]
    try:
        row["circuit_calls"] = int(calls) if calls is not None and np.isfinite(float(calls)) else 0
    except (TypeError, ValueError):
        row["circuit_calls"] = 0
    secs = _num(summary, "seconds_total")
    if not math.isfinite(secs) and epochs is not None and "seconds" in epochs:
        secs = float(epochs["seconds"].sum())
    row["seconds"] = secs
    row["has_samples"] = (folder / "samples.npz").exists()
    row.update(_optional_trial_values(summary, epochs))

    if row["status"] == "completed":
        planned = config.get("epochs")
        if isinstance(planned, int) and row["epochs_completed"] < planned:
            problems.append(f"summary says completed but epochs.parquet has {row['epochs_completed']} "
                            f"of {planned} epochs")
        if not math.isfinite(row["mmd_last100"]) and epochs is not None:
            problems.append("no evaluated MMD in the final 100 epochs")
        for k in (schema.MODEL_FIELD, "phase"):
            if k not in config:
                problems.append(f"config.json lacks {k!r}")
        if config.get(schema.MODEL_FIELD) not in (None, *schema.MODELS):
            problems.append(f"unknown model {config.get(schema.MODEL_FIELD)!r}")
    row["usable"] = row["status"] == "completed" and not problems
    row["problem"] = "; ".join(problems) if problems else None
    return row, config, epochs


def _arrow_safe(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Make config columns Parquet-safe: lists/dicts -> JSON text; mixed scalar types -> text."""
    for c in cols:
        vals = df[c].tolist()
        kinds = {type(v) for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if any(k in (list, dict) for k in kinds):
            df[c] = [None if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else str(v)
                     for v in vals]
        elif kinds == {bool}:
            df[c] = pd.array(vals, dtype="boolean")
        elif kinds and kinds <= {int}:
            df[c] = pd.array(vals, dtype="Int64")
        elif kinds and kinds <= {int, float}:
            df[c] = pd.array([math.nan if v is None else float(v) for v in vals], dtype="float64")
        elif kinds == {str}:
            df[c] = pd.array(vals, dtype="string")
        elif kinds:
            df[c] = pd.array([None if v is None else str(v) for v in vals], dtype="string")
        else:
            df[c] = pd.array([None] * len(vals), dtype="string")
    return df


def config_column(name: str) -> str:
    """Column name of config field `name` in trials.parquet (`cfg_` prefix on a clash)."""
    fixed = set(schema.fixed_columns("trials.parquet")) - {"trial_id"}
    return f"cfg_{name}" if name in fixed else name


def collect(run_dir: str | os.PathLike, exclude: str | os.PathLike | None = None,
            progress: bool = True, extra_ignored: tuple[str, ...] = ()) -> Collected:
    """Read every trial below `run_dir` -> Collected(trials, epochs, configs).

    Raises FileNotFoundError if `run_dir` does not exist or holds no trial folder, ValueError if it is a file.
    """
    run = Path(run_dir)
    check_run_dir(run)
    folders = find_trial_dirs(run, Path(exclude) if exclude is not None else None)
    if not folders:
        raise FileNotFoundError(no_trial_message(run))
    try:
        from tqdm import tqdm
        it = tqdm(folders, desc="reading trials", unit="trial", disable=not progress or len(folders) < 50)
    except ImportError:  # pragma: no cover
        it = folders
    rows, configs, frames, warnings = [], {}, {}, []
    for folder in it:
        row, cfg, ep = read_trial(folder, run)
        rows.append(row)
        configs.setdefault(row["trial_id"], []).append((row, cfg, ep))

    # duplicate trial ids: keep the best copy (completed first, then most epochs); mark the rest
    final_rows, final_cfg = [], {}
    for tid, copies in configs.items():
        copies.sort(key=lambda t: (not t[0]["usable"], STATUS_RANK.get(t[0]["status"], 9),
                                   -t[0]["epochs_completed"], t[0]["path"]))
        for i, (row, cfg, ep) in enumerate(copies):
            if i == 0:
                final_cfg[tid] = cfg
                if ep is not None:
                    frames[tid] = ep
            else:
                warnings.append(f"trial id {tid!r} appears in {len(copies)} folders; kept {copies[0][0]['path']!r}, "
                                f"left out {row['path']!r}")
                row = dict(row, trial_id=f"{tid}#dup{i}", status="duplicate", usable=False,
                           problem=f"duplicate of trial {tid!r} in {copies[0][0]['path']!r}")
            final_rows.append((row, cfg))

    cfg_fields: list[str] = []
    for _, cfg in final_rows:
        for k in cfg:
            if k != "trial_id" and k not in cfg_fields:
                cfg_fields.append(k)
    records = []
    for row, cfg in final_rows:
        rec = dict(row)
        if cfg:
            rec["setting_id"] = key_id(setting_fields(cfg))
            rec["pair_key"] = key_id(pair_fields(cfg, extra_ignored))
        else:
            rec["setting_id"] = rec["pair_key"] = None
        for k in cfg_fields:
            rec[config_column(k)] = cfg.get(k)
        records.append(rec)
    trials = pd.DataFrame.from_records(records)
    cfg_cols = [config_column(k) for k in cfg_fields]
    order = ["trial_id", "path", "status", "usable", "problem", "failure_reason", "setting_id", "pair_key",
             *cfg_cols, *[c for c in schema.fixed_columns("trials.parquet")
                          if c not in ("trial_id", "path", "status", "usable", "problem", "failure_reason",
                                       "setting_id", "pair_key")]]
    trials = trials[order]
    trials = _arrow_safe(trials, cfg_cols)
    for c in ("trial_id", "path", "status", "problem", "failure_reason", "setting_id", "pair_key"):
        trials[c] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                              for v in trials[c].tolist()], dtype="string")
    for c in ("epochs_completed", "last_epoch", "circuit_calls"):
        trials[c] = trials[c].astype("int64")
    for c in ("usable", "mmd_mismatch", "has_samples", "latent_pool_used"):
        trials[c] = trials[c].astype(bool)
    for c, dt, _ in schema.TRIALS_COLUMNS:
        if dt == "float64":
            trials[c] = pd.to_numeric(trials[c], errors="coerce").astype("float64")
        elif dt == "boolean":
            trials[c] = pd.array([pd.NA if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                                  else bool(v) for v in trials[c].tolist()], dtype="boolean")
    sort_cols = [c for c in ("phase", "model", "n", "setting_id", "seed", "trial_id") if c in trials.columns]
    trials = trials.sort_values(sort_cols, kind="stable", na_position="last").reset_index(drop=True)

    epochs = build_epochs(frames, {r["trial_id"]: r for r, _ in final_rows})
    schema.check_columns(trials, "trials.parquet")
    return Collected(run, trials, epochs, final_cfg, cfg_fields, warnings)


def _empty_column(dt: str, n: int) -> Any:
    if dt == "bool":
        return np.zeros(n, dtype=bool)
    if dt == "boolean":
        return pd.array([pd.NA] * n, dtype="boolean")
    if dt == "int64":
        return np.zeros(n, dtype=np.int64)
    return np.full(n, math.nan)


def _to_boolean(values: pd.Series) -> pd.arrays.BooleanArray:
    """Nullable boolean from a bool / object / float column (NaN and None -> NA)."""
    out = []
    for v in values.tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(pd.NA)
        else:
            out.append(bool(v))
    return pd.array(out, dtype="boolean")


def build_epochs(frames: dict[str, pd.DataFrame], rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Concatenate per-trial epoch frames with `trial_id` and the rolling-100 MMD column.

    Columns missing from a trial's file (the optional diversity and prior-diagnostic columns of old runs)
    are filled with NaN (floats), NA (nullable booleans), False or 0; extra columns are kept after them."""
    cols = [c for c, _, _ in schema.EPOCHS_COLUMNS]
    parts = []
    for tid, ep in frames.items():
        ep = ep.copy()
        planned = rows[tid].get("last_epoch") or len(ep)
        ep["mmd_rolling"] = rolling_mmd(ep["mmd"].astype("float64"), planned).to_numpy()
        ep.insert(0, "trial_id", tid)
        for c, dt, _ in schema.EPOCHS_COLUMNS:
            if c not in ep.columns:
                ep[c] = _empty_column(dt, len(ep))
            elif dt == "boolean":
                ep[c] = _to_boolean(ep[c])
        extra = [c for c in ep.columns if c not in cols]
        parts.append(ep[cols + extra])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="string" if c == "trial_id" else
                                          ("bool" if dt == "bool" else dt)) for c, dt, _ in schema.EPOCHS_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    out["trial_id"] = out["trial_id"].astype("string")
    for c, dt, _ in schema.EPOCHS_COLUMNS:
        if dt == "int64":
            out[c] = pd.to_numeric(out[c], errors="coerce").fillna(0).astype("int64")
        elif dt == "bool":
            out[c] = out[c].astype("boolean").fillna(False).astype(bool)
        elif dt == "float64":
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        elif dt == "boolean":
            out[c] = _to_boolean(out[c])
    return out
