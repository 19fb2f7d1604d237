"""Field roles of a trial config and the column schemas of every Parquet table `analysis` writes.

The pairing rule (docs/analysis.md): a *setting* is every config field except `seed` and the bookkeeping
fields. Three arms (`MODELS`) are compared in three comparisons (`COMPARISONS`); for comparison A_vs_B a
trial of arm A is paired with the arm-B trials whose settings agree except in `model` and every field that
either arm ignores (`ignored_fields`: bernoulli ignores CIRCUIT_FIELDS + PRIOR_FIELDS, product ignores
CIRCUIT_FIELDS, qcbm none; `n` and `latent_pool` are read by every arm), seed by seed.

`TABLES` maps each output file to its columns `(name, dtype, meaning)`; docs/analysis.md documents the same
columns and a test keeps the two in step. `check_columns` verifies a frame against its table.
"""
from __future__ import annotations

import pandas as pd

from qgan import results

# The per-trial file contract (config field roles, epoch columns, summary fields) lives in qgan.results, the one
# torch-free module that the trainer, the sweeps and analysis share; analysis names it through these aliases.
#: Fields only the circuit reads: ignored by `product` and `bernoulli`.
CIRCUIT_FIELDS: tuple[str, ...] = results.CIRCUIT_FIELDS
#: Fields of a trained prior (its optimiser and schedule): read by `qcbm` and `product`, ignored by `bernoulli`.
PRIOR_FIELDS: tuple[str, ...] = results.PRIOR_FIELDS
#: Fields a Bernoulli trial ignores: CIRCUIT_FIELDS + PRIOR_FIELDS (`n` and `latent_pool` are read by every arm).
QCBM_ONLY_FIELDS: tuple[str, ...] = results.QCBM_ONLY
#: Fields that never make two trials different settings (`trial_id` is added by the sweep layer).
BOOKKEEPING_FIELDS: tuple[str, ...] = (*results.BOOKKEEPING, results.TRIAL_ID)
SEED_FIELD = "seed"
MODEL_FIELD = "model"
#: The three arms: fixed Bernoulli(0.5) latent (the paper's baseline), a trained product of independent
#: Bernoulli bits (the classical trained-prior control), the QCBM (the circuit).
MODELS: tuple[str, ...] = tuple(sorted(results.MODELS))  # display order: baseline, control, circuit
#: Display names of the arms.
ARM_NAMES = {"bernoulli": "Bernoulli", "product": "product", "qcbm": "QCBM"}
#: The comparisons "A_vs_B": RI = (MMD_B - MMD_A) / MMD_A (Eq. 10 with A in the denominator; > 0: A better).
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("qcbm_vs_bernoulli", "qcbm", "bernoulli"),     # the paper's Eq. 10
    ("qcbm_vs_product", "qcbm", "product"),         # the quantum question: circuit vs trained classical prior
    ("product_vs_bernoulli", "product", "bernoulli"),
)
#: Latent pool size (int, 0 = fresh draws every epoch); read by every arm, so part of every pairing key.
LATENT_POOL_FIELD = "latent_pool"
#: Backends on which a QCBM trial reuses the bitstrings of its last circuit run (a pool) whatever latent_pool says.
POOL_BACKENDS: tuple[str, ...] = ("aer-noisy", "ionq")
#: Fewest paired seeds for a setting not to be flagged `underpowered`: with 5 seeds the two-sided Wilcoxon
#: signed-rank test cannot reach p < 0.05 (its smallest p is 2 / 2**5 = 0.0625); with 6 it is 0.03125.
MIN_POWERED_SEEDS = 6
STATUSES = results.STATUSES
LAST_SHORT = results.LAST_SHORT
LAST_LONG = results.LAST_LONG
CHANNELS = results.CHANNELS
#: Prior diagnostics an epochs.parquet may carry (float; NaN except at QCBM/product update epochs).
PRIOR_DIAGNOSTIC_COLUMNS: tuple[str, ...] = tuple(c for c in results.PRIOR_DIAGNOSTICS if c != "prior_exact")
#: Epoch columns older trainers did not write (absent -> NaN / NA): diversity and the prior diagnostics.
OPTIONAL_EPOCH_COLUMNS: tuple[str, ...] = ("diversity", *results.PRIOR_DIAGNOSTICS)
#: Summary fields older trainers did not write.
OPTIONAL_SUMMARY_FIELDS: tuple[str, ...] = tuple(k for k in results.SUMMARY_FIELDS if k.startswith("diversity"))
ignored_fields = results.ignored_fields


#: The arms with a trained prior (those that read the prior fields): qcbm and product.
TRAINED_MODELS: tuple[str, ...] = tuple(m for m in MODELS if not set(PRIOR_FIELDS) <= set(ignored_fields(m)))


def comparison_ignored(arm_a: str, arm_b: str) -> tuple[str, ...]:
    """Fields dropped from the pairing key of comparison A_vs_B: those either arm ignores (schema order)."""
    drop = set(ignored_fields(arm_a)) | set(ignored_fields(arm_b))
    return tuple(f for f in CIRCUIT_FIELDS + PRIOR_FIELDS if f in drop)


def uses_latent_pool(config: dict) -> bool:
    """For runs whose summary.json lacks `latent_pool_size` (older trainers): a trial used a pool when
    `latent_pool` > 0, or when it is a QCBM trial on a pool backend."""
    try:
        pool = int(config.get(LATENT_POOL_FIELD) or 0)
    except (TypeError, ValueError):
        pool = 0
    return pool > 0 or (config.get(MODEL_FIELD) == "qcbm" and config.get("backend") in POOL_BACKENDS)

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
    ("pair_key", "string", "12-hex-digit id of the qcbm_vs_bernoulli pairing key (setting minus model, "
                           "circuit and prior fields)"),
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
    ("latent_pool_used", "bool", "the trial reused a latent pool: `latent_pool` > 0, or a qcbm trial on "
                                 "backend aer-noisy or ionq"),
    ("diversity_final", "float64", "summary.json `diversity_final` (else the last evaluated epoch `diversity`): "
                                   "mean pairwise distance between generated eval images; NaN for old runs"),
    ("diversity_real", "float64", "summary.json `diversity_real`: the same for the held-out real set; NaN "
                                  "for old runs"),
    ("prior_tv_final", "float64", "last recorded `prior_tv` (TV distance of the prior from uniform); NaN if none"),
    ("prior_entropy_bits_final", "float64", "last recorded `prior_entropy_bits`; NaN if none"),
    ("prior_total_correlation_bits_final", "float64", "last recorded `prior_total_correlation_bits`; NaN if none"),
    ("prior_max_marginal_shift_final", "float64", "last recorded `prior_max_marginal_shift`; NaN if none"),
    ("theta_shift_rx_final", "float64", "last recorded `theta_shift_rx`; NaN if none"),
    ("theta_shift_rz_final", "float64", "last recorded `theta_shift_rz`; NaN if none"),
    ("theta_shift_rxx_final", "float64", "last recorded `theta_shift_rxx`; NaN if none"),
    ("prior_exact_final", "boolean", "`prior_exact` at the last recorded prior diagnostics; null if none"),
]

EPOCHS_COLUMNS: list[tuple[str, str, str]] = [
    ("trial_id", "string", "trial the row belongs to (join with trials.parquet)"),
    # the trial's epochs.parquet columns (qgan.results.EPOCH_SCHEMA), with the rolling MMD right after `mmd`;
    # `prior_exact` is nullable here: null where an old trial file does not record it
    *[row for name, (dtype, meaning) in results.EPOCH_SCHEMA.items() for row in
      [(name, "boolean" if name == "prior_exact" else dtype, meaning)]
      + ([("mmd_rolling", "float64", "rolling mean of `mmd` over min(100, E) epochs, "
           "NaN-aware (Fig. 3 solid line)")] if name == "mmd" else [])],
]

_PAIR_STATUSES = ("paired, no_<arm B> (no partner trial), no_<arm A> (a partner group without any arm-A "
                  "setting), no_completed_<arm>, no_common_seed")

IMPROVEMENT_COLUMNS: list[tuple[str, str, str]] = [
    ("comparison", "string", "qcbm_vs_bernoulli (the paper's Eq. 10), qcbm_vs_product (the quantum question) "
                             "or product_vs_bernoulli"),
    ("arm_a", "string", "arm A of the comparison (in the denominator of RI)"),
    ("arm_b", "string", "arm B, the partner arm"),
    ("setting_id", "string", "arm-A setting id (for a `no_<arm A>` row: the arm-B setting id)"),
    ("pair_key", "string", "pairing key of the comparison shared with the partner group (the partner group's id)"),
    ("label", "string", "short human-readable name built from the fields that vary in the run"),
    ("pair_status", "string", _PAIR_STATUSES),
    ("unpaired_reason", "string", "plain-words reason when not paired (with the closest config's differing "
                                  "fields), else null"),
    (CONFIG_PLACEHOLDER, "mixed", "the setting's config fields (phase, n, train_size, epochs, update_every, "
                                  "qcbm_optimizer, ...; not seed/bookkeeping)"),
    ("stratum", "string", "win-rate stratum: the values of the fields that tell apart arm-A settings sharing "
                          "one partner group (`all` when none do; null for a `no_<arm A>` row)"),
    ("n_seeds", "int64", "number of paired seeds (both sides usable)"),
    ("n_seeds_a", "int64", "usable arm-A seeds of the setting"),
    ("n_seeds_b", "int64", "usable arm-B seeds of the partner group"),
    ("n_excluded", "int64", "trials of this setting or its partner group left out (failed, running, ...)"),
    ("trial_ids_a", "list<string>", "usable arm-A trials of the setting"),
    ("trial_ids_b", "list<string>", "usable arm-B trials of the partner group"),
    ("seeds", "list<int64>", "the paired seeds, ascending"),
    ("mmd_a_seeds", "list<float64>", "per paired seed: arm-A final-100-epoch MMD"),
    ("mmd_b_seeds", "list<float64>", "per paired seed: arm-B final-100-epoch MMD"),
    ("diff_seeds", "list<float64>", "per paired seed: MMD_B - MMD_A (positive = arm A better)"),
    ("mmd_a", "float64", "MMD_A: mean over paired seeds of the final-100-epoch MMD of arm A"),
    ("mmd_b", "float64", "MMD_B: the same for arm B (the Bernoulli MMD in qcbm_vs_bernoulli)"),
    ("mmd_a_last500", "float64", "mean over paired seeds of the final-500-epoch MMD (arm A)"),
    ("mmd_b_last500", "float64", "the same for arm B"),
    ("ri", "float64", "Eq. 10 relative improvement (MMD_B - MMD_A) / MMD_A as a fraction (1.5 = 150 %; "
                      "positive = arm A better)"),
    ("ri_ci_low", "float64", "lower end of the paired bootstrap CI of `ri` over seeds (scipy.stats.bootstrap; "
                             "NaN if < 2 seeds)"),
    ("ri_ci_high", "float64", "upper end of that CI"),
    ("ri_ci_method", "string", "BCa, or percentile where BCa is degenerate (< 3 seeds, all resamples equal); "
                               "null without a CI"),
    ("a_wins", "boolean", "ri > 0 (nullable: null when not paired)"),
    ("outcome", "string", "win (CI above 0), loss (CI below 0) or tie (CI contains 0, or no CI); null when "
                          "not paired"),
    ("log_ratio_mean", "float64", "mean over paired seeds of d_s = log MMD_B,s - log MMD_A,s (positive = arm A "
                                  "better)"),
    ("log_ratio_ci_low", "float64", "lower end of the t-based CI of the mean log ratio"),
    ("log_ratio_ci_high", "float64", "upper end of that CI"),
    ("t_stat", "float64", "paired t statistic of d_s against 0 (scipy.stats.ttest_1samp)"),
    ("t_p", "float64", "its two-sided p-value (NaN with < 2 seeds, equal d_s or a non-positive MMD)"),
    ("sign_a_better", "int64", "paired seeds with MMD_A < MMD_B"),
    ("sign_b_better", "int64", "paired seeds with MMD_A > MMD_B"),
    ("sign_p", "float64", "two-sided exact binomial sign test over seeds (ties dropped)"),
    ("wilcoxon_stat", "float64", "Wilcoxon signed-rank statistic of `diff_seeds` (two-sided)"),
    ("wilcoxon_p", "float64", "its p-value (exact for small samples; NaN with < 2 seeds or all-zero diffs)"),
    ("underpowered", "boolean", "fewer than 6 paired seeds (with 5 the two-sided Wilcoxon cannot reach "
                                "p < 0.05); null when not paired"),
    ("test_note", "string", "what limits the per-setting tests (underpowered, BCa fallback, ...)"),
    ("mmd_floor", "float64", "mean real-vs-real residual MMD of the paired trials"),
    ("mmd_floor_sd", "float64", "its standard deviation over those trials (NaN with fewer than 2)"),
]

PAIRS_COLUMNS: list[tuple[str, str, str]] = [
    ("comparison", "string", "the comparison (join with improvement.parquet on comparison and setting_id)"),
    ("arm_a", "string", "arm A"),
    ("arm_b", "string", "arm B"),
    ("setting_id", "string", "arm-A setting id"),
    ("pair_key", "string", "the partner group (rows sharing it share the arm-B trial of a seed)"),
    ("phase", "string", "phase of the setting"),
    ("seed", "int64", "the shared seed"),
    ("trial_id_a", "string", "arm-A trial"),
    ("trial_id_b", "string", "arm-B trial"),
    ("mmd_a", "float64", "arm-A final-100-epoch MMD"),
    ("mmd_b", "float64", "arm-B final-100-epoch MMD"),
    ("diff", "float64", "mmd_b - mmd_a"),
    ("ri", "float64", "per-seed Eq. 10: mmd_b / mmd_a - 1"),
    ("log_ratio", "float64", "log mmd_b - log mmd_a (NaN when either is not positive)"),
]

WINRATE_COLUMNS: list[tuple[str, str, str]] = [
    ("comparison", "string", "the comparison"),
    ("arm_a", "string", "arm A (a win is arm A better)"),
    ("arm_b", "string", "arm B"),
    ("scope", "string", "pooled, phase or setting"),
    ("phase", "string", "the phase (`all` for pooled)"),
    ("stratum", "string", "the stratum counted (values of the fields that tell apart settings sharing one "
                          "partner group, or `all`; scope=setting rows: the setting's); null for pooled and "
                          "per-phase seed rows"),
    ("setting_id", "string", "the setting for scope=setting rows, else null"),
    ("unit", "string", "what is counted: `setting` (one outcome per paired setting) or `seed` (one per paired "
                       "seed)"),
    ("independent", "bool", "no partner trial is counted twice in the row (always true for unit=setting; "
                            "false for seed rows over settings that share partners)"),
    ("n", "int64", "number of comparisons (wins + ties + losses)"),
    ("wins", "int64", "arm A better: the RI CI lies above 0 (unit=seed: MMD_B > MMD_A)"),
    ("ties", "int64", "the RI CI contains 0 or is missing (unit=seed: MMD_B = MMD_A)"),
    ("losses", "int64", "arm A worse: the RI CI lies below 0 (unit=seed: MMD_B < MMD_A)"),
    ("n_partner_groups", "int64", "distinct partner groups among the comparisons (= n for unit=setting)"),
    ("win_rate", "float64", "wins / n"),
    ("wilson_low", "float64", "Wilson score interval of wins / n, lower end (scipy binomtest; level in "
                              "`confidence`)"),
    ("wilson_high", "float64", "Wilson score interval, upper end"),
    ("confidence", "float64", "confidence level of the interval (0.95)"),
    ("sign_p", "float64", "two-sided exact binomial sign test of wins vs losses (ties dropped), p = 0.5"),
    ("wilcoxon_stat", "float64", "Wilcoxon signed-rank statistic (setting rows: MMD_B - MMD_A over seeds; "
                                 "aggregate rows: the RI values of the unit)"),
    ("wilcoxon_p", "float64", "its two-sided p-value (NaN when too few non-zero values)"),
    ("ri_min", "float64", "smallest RI among the comparisons"),
    ("ri_median", "float64", "median RI"),
    ("ri_max", "float64", "largest RI"),
    ("note", "string", "limits of the test (too few seeds, not independent, ...), else null"),
]

DOWNSTREAM_ARMS_COLUMNS: list[tuple[str, str, str]] = [
    ("phase", "string", "the trials' phase"),
    ("n", "int64", "latent size"),
    ("model", "string", "the arm"),
    ("family", "string", "augmentation, feature or physical (downstream.parquet)"),
    ("measure", "string", "the measure (qgan.results.DOWNSTREAM_MEASURES)"),
    ("scarce_size", "int64", "real images of the scarce phase (0: n/a)"),
    ("augmentation", "string", "none, generated or gain ('' n/a)"),
    ("n_trials", "int64", "trials averaged"),
    ("mean", "float64", "mean over trials of the per-trial value (itself a mean over classifier seeds)"),
    ("sd", "float64", "standard deviation over trials (NaN with fewer than 2)"),
    ("ci_low", "float64", "bootstrap CI of the mean, lower end (BCa; percentile where degenerate)"),
    ("ci_high", "float64", "upper end"),
    ("higher_is_better", "bool", "direction of the measure"),
]

DOWNSTREAM_PAIRS_COLUMNS: list[tuple[str, str, str]] = [
    ("comparison", "string", "the comparison A_vs_B"),
    ("arm_a", "string", "arm A"),
    ("arm_b", "string", "arm B"),
    ("phase", "string", "phase of the paired trials (pooled over their settings)"),
    ("family", "string", "augmentation, feature or physical"),
    ("measure", "string", "the measure"),
    ("scarce_size", "int64", "real images of the scarce phase (0: n/a)"),
    ("augmentation", "string", "generated or gain ('' n/a)"),
    ("n_pairs", "int64", "paired trials (arm-A trial with its same-seed arm-B partner)"),
    ("mean_diff", "float64", "mean over pairs of value_A - value_B"),
    ("ci_low", "float64", "bootstrap CI of the mean difference, lower end"),
    ("ci_high", "float64", "upper end"),
    ("wilcoxon_p", "float64", "two-sided Wilcoxon signed-rank p of the differences (NaN with < 2 non-zero)"),
    ("higher_is_better", "bool", "direction of the measure"),
    ("favours", "string", "the arm the CI favours (it excludes 0), else neither"),
    ("note", "string", "limits: too few pairs, BCa fallback, shared partners"),
]

TABLES: dict[str, list[tuple[str, str, str]]] = {
    "trials.parquet": TRIALS_COLUMNS,
    "epochs.parquet": EPOCHS_COLUMNS,
    "improvement.parquet": IMPROVEMENT_COLUMNS,
    "pairs.parquet": PAIRS_COLUMNS,
    "winrate.parquet": WINRATE_COLUMNS,
    "downstream_arms.parquet": DOWNSTREAM_ARMS_COLUMNS,
    "downstream_pairs.parquet": DOWNSTREAM_PAIRS_COLUMNS,
}


def fixed_columns(table: str) -> list[str]:
    """Column names of `table` other than the config placeholder, in order."""
    return [name for name, _, _ in TABLES[table] if name != CONFIG_PLACEHOLDER]


def check_columns(df: pd.DataFrame, table: str) -> None:
    """Raise ValueError if `df` lacks a fixed column of `table` (config columns are free-form)."""
    missing = [c for c in fixed_columns(table) if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing}")
