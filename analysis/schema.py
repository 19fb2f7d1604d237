"""Field roles of a trial config and the column schemas of every Parquet table `analysis` writes.

The pairing rule (docs/interfaces.md): a *setting* is every config field except `seed` and the bookkeeping
fields; a Bernoulli trial is paired with a QCBM trial when all their fields agree except `model`, the
QCBM-only fields (`n` excluded: it is also the Bernoulli latent size) and the bookkeeping fields, seed by seed.

`TABLES` maps each output file to its columns `(name, dtype, meaning)`; docs/analysis.md documents the same
columns and a test keeps the two in step. `check_columns` verifies a frame against its table.
"""
from __future__ import annotations

import pandas as pd

from qgan import results

# The per-trial file contract (config field roles, epoch columns, summary fields) lives in qgan.results, the one
# torch-free module that the trainer, the sweeps and analysis share; analysis names it through these aliases.
QCBM_ONLY_FIELDS: tuple[str, ...] = results.QCBM_ONLY
#: Fields that never make two trials different settings (`trial_id` is added by the sweep layer).
BOOKKEEPING_FIELDS: tuple[str, ...] = (*results.BOOKKEEPING, results.TRIAL_ID)
SEED_FIELD = "seed"
MODEL_FIELD = "model"
MODELS = results.MODELS
STATUSES = results.STATUSES
LAST_SHORT = results.LAST_SHORT
LAST_LONG = results.LAST_LONG
CHANNELS = results.CHANNELS

# ---------------------------------------------------------------------------------------------------------
# Output tables: (column, dtype, meaning). "config..." marks where the trial's config columns go.
CONFIG_PLACEHOLDER = "<config fields>"

TRIALS_COLUMNS: list[tuple[str, str, str]] = [
    ("trial_id", "string", "unique id of the trial within the run (config.json `trial_id`, else its folder)"),
    ("path", "string", "trial folder relative to RUN_DIR"),
    ("status", "string", "summary.json `status` (completed, failed, running), or `missing_summary`, "
                         "`unreadable`, `duplicate`"),
    ("usable", "bool", "true when the trial enters the statistics (completed and its files check out)"),
    ("problem", "string", "why an otherwise completed trial is left out, or the failure reason; null if none"),
    ("failure_reason", "string", "summary.json `failure_reason`"),
    ("setting_id", "string", "12-hex-digit id of the setting (config minus seed and bookkeeping fields)"),
    ("pair_key", "string", "12-hex-digit id of the pairing key (setting minus model and QCBM-only fields)"),
    (CONFIG_PLACEHOLDER, "mixed", "every config.json field as its own column (phase, model, seed, n, ...); "
                                  "lists and dicts as JSON text; a name clashing with a column here gets "
                                  "the prefix `cfg_`"),
    ("epochs_completed", "int64", "number of rows in the trial's epochs.parquet"),
    ("last_epoch", "int64", "largest `epoch` in epochs.parquet (0 if none)"),
    ("mmd_last100", "float64", "mean evaluated MMD over the final min(100, E) epochs, recomputed from "
                               "epochs.parquet (Eq. 10 input)"),
    ("mmd_last500", "float64", "mean evaluated MMD over the final min(500, E) epochs, recomputed"),
    ("mmd_final", "float64", "last evaluated MMD, recomputed"),
    ("mmd_min", "float64", "smallest evaluated MMD"),
    ("summary_mmd_last100", "float64", "summary.json `mmd_last100` as written by the trainer"),
    ("summary_mmd_last500", "float64", "summary.json `mmd_last500` as written by the trainer"),
    ("mmd_mismatch", "bool", "recomputed and reported last-100/last-500 means disagree (rel. 1e-6)"),
    ("mmd_floor", "float64", "summary.json `mmd_floor`: real-vs-real residual MMD"),
    ("circuit_calls", "int64", "summary.json `circuit_calls` (else the last cumulative epoch value)"),
    ("seconds", "float64", "summary.json `seconds_total` (else the sum of epoch seconds)"),
    ("has_samples", "bool", "the trial folder holds samples.npz"),
]

EPOCHS_COLUMNS: list[tuple[str, str, str]] = [
    ("trial_id", "string", "trial the row belongs to (join with trials.parquet)"),
    # the trial's epochs.parquet columns (qgan.results.EPOCH_SCHEMA), with the rolling MMD right after `mmd`
    *[row for name, (dtype, meaning) in results.EPOCH_SCHEMA.items() for row in
      [(name, dtype, meaning)] + ([("mmd_rolling", "float64", "rolling mean of `mmd` over min(100, E) epochs, "
                                   "NaN-aware (Fig. 3 solid line)")] if name == "mmd" else [])],
]

IMPROVEMENT_COLUMNS: list[tuple[str, str, str]] = [
    ("setting_id", "string", "QCBM setting id (for a `no_qcbm` row: the Bernoulli setting id)"),
    ("pair_key", "string", "pairing key shared with the Bernoulli partner"),
    ("label", "string", "short human-readable name built from the fields that vary in the run"),
    ("pair_status", "string", "paired, no_bernoulli, no_qcbm, no_completed_bernoulli, no_completed_qcbm, "
                              "no_common_seed"),
    ("unpaired_reason", "string", "plain-words reason when not paired (with the closest config's differing "
                                  "fields), else null"),
    (CONFIG_PLACEHOLDER, "mixed", "the setting's config fields (phase, n, train_size, epochs, update_every, "
                                  "qcbm_optimizer, ...; not seed/bookkeeping)"),
    ("n_seeds", "int64", "number of paired seeds (both sides usable)"),
    ("n_seeds_bernoulli", "int64", "usable Bernoulli seeds of the partner group"),
    ("n_seeds_qcbm", "int64", "usable QCBM seeds of the setting"),
    ("n_excluded", "int64", "trials of this setting or its partner group left out (failed, running, ...)"),
    ("seeds", "list<int64>", "the paired seeds, ascending"),
    ("mmd_b_seeds", "list<float64>", "per paired seed: Bernoulli final-100-epoch MMD"),
    ("mmd_q_seeds", "list<float64>", "per paired seed: QCBM final-100-epoch MMD"),
    ("diff_seeds", "list<float64>", "per paired seed: MMD_B - MMD_Q (positive = QCBM better)"),
    ("mmd_b", "float64", "MMD_B: mean over paired seeds of the final-100-epoch MMD (Bernoulli)"),
    ("mmd_q", "float64", "MMD_Q: same for the QCBM"),
    ("mmd_b_last500", "float64", "mean over paired seeds of the final-500-epoch MMD (Bernoulli)"),
    ("mmd_q_last500", "float64", "same for the QCBM"),
    ("ri", "float64", "Eq. 10 relative improvement (MMD_B - MMD_Q) / MMD_Q as a fraction (1.5 = 150 %)"),
    ("ri_ci_low", "float64", "lower end of the bootstrap percentile CI of `ri` over seeds (NaN if < 2 seeds)"),
    ("ri_ci_high", "float64", "upper end of the bootstrap percentile CI"),
    ("qcbm_wins", "boolean", "ri > 0 (nullable: null when not paired)"),
    ("wilcoxon_stat", "float64", "Wilcoxon signed-rank statistic of `diff_seeds` (two-sided)"),
    ("wilcoxon_p", "float64", "its p-value (exact for small samples; NaN with < 2 seeds or all-zero diffs)"),
    ("test_note", "string", "what limits the per-setting test (e.g. fewest possible p with k seeds)"),
    ("mmd_floor", "float64", "mean real-vs-real residual MMD of the paired trials"),
]

PAIRS_COLUMNS: list[tuple[str, str, str]] = [
    ("setting_id", "string", "QCBM setting id (join with improvement.parquet)"),
    ("phase", "string", "phase of the setting"),
    ("seed", "int64", "the shared seed"),
    ("trial_id_b", "string", "Bernoulli trial"),
    ("trial_id_q", "string", "QCBM trial"),
    ("mmd_b", "float64", "Bernoulli final-100-epoch MMD"),
    ("mmd_q", "float64", "QCBM final-100-epoch MMD"),
    ("diff", "float64", "mmd_b - mmd_q"),
    ("ri", "float64", "per-seed Eq. 10: mmd_b / mmd_q - 1"),
]

WINRATE_COLUMNS: list[tuple[str, str, str]] = [
    ("scope", "string", "pooled, phase or setting"),
    ("phase", "string", "the phase (`all` for pooled)"),
    ("setting_id", "string", "the setting for scope=setting rows, else null"),
    ("unit", "string", "what is counted: `setting` (one RI per paired setting) or `seed` (one per paired seed)"),
    ("n", "int64", "number of comparisons"),
    ("wins", "int64", "QCBM better (RI > 0, or MMD_B > MMD_Q for a seed)"),
    ("losses", "int64", "QCBM worse"),
    ("ties", "int64", "exactly equal (left out of the sign test)"),
    ("win_rate", "float64", "wins / n"),
    ("wilson_low", "float64", "Wilson score interval, lower end (confidence level in `confidence`)"),
    ("wilson_high", "float64", "Wilson score interval, upper end"),
    ("confidence", "float64", "confidence level of the interval (0.95)"),
    ("sign_p", "float64", "two-sided exact binomial sign test of wins vs losses, p = 0.5"),
    ("wilcoxon_stat", "float64", "Wilcoxon signed-rank statistic (setting rows: MMD_B - MMD_Q over seeds; "
                                 "aggregate rows: the RI values of the unit)"),
    ("wilcoxon_p", "float64", "its two-sided p-value (NaN when too few non-zero values)"),
    ("ri_min", "float64", "smallest RI among the comparisons"),
    ("ri_median", "float64", "median RI"),
    ("ri_max", "float64", "largest RI"),
    ("note", "string", "limits of the test (too few seeds, ...), else null"),
]

TABLES: dict[str, list[tuple[str, str, str]]] = {
    "trials.parquet": TRIALS_COLUMNS,
    "epochs.parquet": EPOCHS_COLUMNS,
    "improvement.parquet": IMPROVEMENT_COLUMNS,
    "pairs.parquet": PAIRS_COLUMNS,
    "winrate.parquet": WINRATE_COLUMNS,
}


def fixed_columns(table: str) -> list[str]:
    """Column names of `table` other than the config placeholder, in order."""
    return [name for name, _, _ in TABLES[table] if name != CONFIG_PLACEHOLDER]


def check_columns(df: pd.DataFrame, table: str) -> None:
    """Raise ValueError if `df` lacks a fixed column of `table` (config columns are free-form)."""
    missing = [c for c in fixed_columns(table) if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing}")
