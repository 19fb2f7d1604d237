"""The per-trial result contract: one definition for every writer and every reader. Never imports torch.

A trial folder holds `config.json` (the effective `TrialConfig.to_dict()` plus `trial_id`), `epochs.parquet`
(one row per finished epoch, columns `EPOCH_SCHEMA`), `summary.json` (fields `SUMMARY_FIELDS`), and optionally
`samples.npz` / `samples.png` and `checkpoint/`. The trainer (`qgan.train`), the sweep trainable
(`sweeps.trainable`), the QPU campaign (`sweeps.qpu_campaign`), the analysis test fixtures
(`analysis.fakerun`) and the analysis reader (`analysis.collect`) all go through this module; nothing else
lists these columns or fields.

Identity (docs/interfaces.md): the *identity* of a trial is its effective config minus the bookkeeping fields;
its *setting* is the identity minus `seed`. `key_id` hashes either to 12 hex digits, independent of key order
and of int/float spelling, so presets, the QPU gateway and analysis name a trial and a setting the same way.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from typing import Any, Callable, Iterable

import numpy as np

# ----------------------------------------------------------------------------------------- enumerations
PHASES: tuple[str, ...] = ("ferrite", "bainite")
#: qcbm: the circuit; bernoulli: fixed Bernoulli(0.5) (the paper's baseline); product: a trained product of n
#: independent bits (the classical trained-prior control).
MODELS: tuple[str, ...] = ("qcbm", "bernoulli", "product")
STATUSES: tuple[str, ...] = ("completed", "failed", "running")
#: Names of the five image channels, in order (docs/data.md).
CHANNELS: tuple[str, ...] = ("IQ", "phase", "KAM", "KS deviation", "grain mask")
#: Short names of the same channels, in the same order (command-line flags such as `qgan evaluate --channels`).
CHANNEL_KEYS: tuple[str, ...] = ("iq", "phase", "kam", "ks", "mask")

# ----------------------------------------------------------------------------------------- field roles
#: Fields only the QCBM circuit reads (qcbm); product and bernoulli trials ignore them.
CIRCUIT_FIELDS: tuple[str, ...] = ("layers", "connectivity", "theta_init", "theta_init_scale", "backend")
#: Fields of a trained prior (qcbm and product read them; bernoulli ignores them).
PRIOR_FIELDS: tuple[str, ...] = (
    "qcbm_optimizer", "qcbm_lr", "qcbm_step", "fd_eps", "fd_common_random", "qcbm_samples", "qcbm_steps",
    "spsa_iterations", "spsa_a", "spsa_c", "spsa_calibrate", "update_every", "qcbm_epochs",
)
#: Fields a Bernoulli trial ignores. `n` and `latent_pool` are not here: every model reads them.
QCBM_ONLY: tuple[str, ...] = CIRCUIT_FIELDS + PRIOR_FIELDS


def ignored_fields(model: str) -> tuple[str, ...]:
    """The config fields a trial of `model` does not read (its identity must not depend on them)."""
    return {"bernoulli": QCBM_ONLY, "product": CIRCUIT_FIELDS}.get(model, ())
#: Config fields that never make two trials different (how it runs, not what it computes).
BOOKKEEPING: tuple[str, ...] = ("device", "checkpoint_every", "n_samples_saved")
#: The key config.json carries beside the TrialConfig fields, and that Tune metrics carry.
TRIAL_ID = "trial_id"

# ----------------------------------------------------------------------------------------- epochs.parquet
#: name -> (pandas/Arrow dtype, meaning). Order = column order of epochs.parquet.
EPOCH_SCHEMA: dict[str, tuple[str, str]] = {
    "epoch": ("int64", "1-based epoch"),
    "mmd": ("float64", "Eq. 9 MMD of the epoch (NaN where not evaluated)"),
    "loss_d": ("float64", "critic loss"),
    "loss_g": ("float64", "generator loss"),
    "wasserstein": ("float64", "Wasserstein estimate"),
    "gp": ("float64", "gradient penalty"),
    "qcbm_updated": ("bool", "a QCBM update happened in this epoch"),
    "qcbm_loss": ("float64", "QCBM loss after the update (NaN when none)"),
    "circuit_calls": ("int64", "cumulative circuit calls (for product: prior evaluations)"),
    "seconds": ("float64", "wall time of the epoch"),
    "diversity": ("float64", "mean pairwise distance of the generated evaluation images (NaN where not evaluated)"),
    "prior_tv": ("float64", "total variation of the latent prior from uniform after the update (NaN elsewhere)"),
    "prior_entropy_bits": ("float64", "entropy of the latent prior in bits (n for uniform)"),
    "prior_total_correlation_bits": ("float64", "sum of marginal entropies minus joint entropy (0: independent bits)"),
    "prior_max_marginal_shift": ("float64", "largest |P(z_q = 1) - 1/2| over latent bits"),
    "prior_exact": ("bool", "the prior columns are exact (from p_theta), not estimated from the latent pool"),
    "theta_shift_rx": ("float64", "largest |change| of an RX angle since the trial's start (rad; QCBM only)"),
    "theta_shift_rz": ("float64", "largest |change| of an RZ angle since the trial's start (rad; QCBM only)"),
    "theta_shift_rxx": ("float64", "largest |change| of an RXX angle since the trial's start (rad; QCBM only)"),
}
EPOCH_COLUMNS: tuple[str, ...] = tuple(EPOCH_SCHEMA)
#: Columns that measure time and so differ between otherwise identical runs.
TIMING_COLUMNS: tuple[str, ...] = ("seconds",)
#: Columns written by prior updates (qcbm, product): a Bernoulli trial leaves them at their defaults, so the
#: null arm (qcbm at the uniform start with qcbm_lr 0) matches its Bernoulli partner in every other column.
PRIOR_DIAGNOSTICS: tuple[str, ...] = (
    "prior_tv", "prior_entropy_bits", "prior_total_correlation_bits", "prior_max_marginal_shift", "prior_exact",
    "theta_shift_rx", "theta_shift_rz", "theta_shift_rxx")
UPDATE_COLUMNS: tuple[str, ...] = ("qcbm_updated", "qcbm_loss", "circuit_calls", *PRIOR_DIAGNOSTICS)


def empty_record(epoch: int) -> dict[str, Any]:
    """A record of `epoch` with every column at its 'nothing happened' value (NaN, False, 0)."""
    rec: dict[str, Any] = {}
    for name, (dtype, _) in EPOCH_SCHEMA.items():
        rec[name] = False if dtype == "bool" else (0 if dtype == "int64" else math.nan)
    rec["epoch"] = int(epoch)
    rec["seconds"] = 0.0
    return rec


def epochs_frame(records: Iterable[dict[str, Any]]):
    """Records -> pandas DataFrame with exactly the epochs.parquet columns and dtypes (missing -> defaults)."""
    import pandas as pd

    df = pd.DataFrame.from_records(list(records), columns=list(EPOCH_COLUMNS))
    return coerce_epochs(df)


def coerce_epochs(df):
    """Give the EPOCH_SCHEMA columns of `df` their dtypes (adding missing ones); other columns untouched."""
    import pandas as pd

    df = df.copy()
    for name, (dtype, _) in EPOCH_SCHEMA.items():
        if name not in df.columns:
            df[name] = False if dtype == "bool" else (0 if dtype == "int64" else math.nan)
        if dtype == "bool":
            df[name] = df[name].astype("boolean").fillna(False).astype(bool)
        elif dtype == "int64":
            df[name] = pd.to_numeric(df[name], errors="coerce").fillna(0).astype("int64")
        else:
            df[name] = pd.to_numeric(df[name], errors="coerce").astype(dtype)
    return df


def write_epochs(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Atomic epochs.parquet."""
    df = epochs_frame(records)
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


# ----------------------------------------------------------------------------------------- summary.json
#: Every field of summary.json -> meaning. `summarize` and `failed_summary` write exactly these.
SUMMARY_FIELDS: dict[str, str] = {
    "status": "completed, failed or running",
    "failure_reason": "why the trial failed (null otherwise)",
    "epochs_completed": "number of finished epochs",
    "mmd_last100": "mean evaluated MMD over the final min(100, E) epochs (Eq. 10 input)",
    "mmd_last500": "mean evaluated MMD over the final min(500, E) epochs",
    "mmd_final": "last evaluated MMD",
    "mmd_floor": "real-vs-real residual MMD of the two held-out real sets",
    "circuit_calls": "circuit executions of the trial",
    "seconds_total": "sum of the epoch wall times",
    "theta": "final prior parameters: QCBM angles or product logits (null for Bernoulli)",
    "diversity_real": "mean pairwise distance of the held-out real evaluation set (compare with `diversity`)",
    "diversity_final": "last evaluated `diversity` of the generated images",
    "latent_pool_size": "bitstrings in the latent pool G was fed from (0: fresh latents every epoch)",
}
LAST_SHORT = 100
LAST_LONG = 500


def tail_mean(values: Iterable[float | None], window: int) -> float:
    """Mean of the finite values among the last `window` entries (or all that exist); NaN if none."""
    v = np.asarray([math.nan if x is None else x for x in values], dtype=np.float64)
    v = v[-int(window):] if window > 0 else np.zeros(0)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def summarize(records: list[dict[str, Any]], status: str, failure_reason: str | None, floor: float | None,
              circuit_calls: int, theta: Iterable[float] | None,
              diversity_real: float | None = None, latent_pool_size: int = 0) -> dict[str, Any]:
    """The summary.json dict of a trial from its epoch records (MMD tail means over the last 100 / 500)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    mmds = [r["mmd"] for r in records]
    finite = [m for m in mmds if m is not None and math.isfinite(m)]
    return {
        "status": status,
        "failure_reason": failure_reason,
        "epochs_completed": len(records),
        "mmd_last100": tail_mean(mmds, LAST_SHORT),
        "mmd_last500": tail_mean(mmds, LAST_LONG),
        "mmd_final": finite[-1] if finite else math.nan,
        "mmd_floor": math.nan if floor is None else float(floor),
        "circuit_calls": int(circuit_calls),
        "seconds_total": float(sum(r["seconds"] for r in records)),
        "theta": None if theta is None else [float(t) for t in theta],
        "diversity_real": math.nan if diversity_real is None else float(diversity_real),
        "diversity_final": next((float(r["diversity"]) for r in reversed(records)
                                 if r.get("diversity") is not None and math.isfinite(r["diversity"])), math.nan),
        "latent_pool_size": int(latent_pool_size),
    }


def failed_summary(reason: str, epochs_completed: int = 0, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json of a trial that failed outside the training loop (bad config, refused budget, crash).

    Keeps what an earlier summary of the same trial already measured (`previous`: its non-null fields), so a
    failure recorded after some epochs still shows their MMD and theta."""
    out: dict[str, Any] = {k: None for k in SUMMARY_FIELDS}
    out["epochs_completed"] = int(epochs_completed)
    for k, v in (previous or {}).items():
        if k in SUMMARY_FIELDS and v is not None:
            out[k] = v
    out["status"] = "failed"
    out["failure_reason"] = str(reason)
    return out


def records_failed_by_trainer(summary: dict[str, Any] | None) -> bool:
    """True when `summary` already records a failure with its reason (the trainer wrote it: keep it)."""
    return bool(summary) and summary.get("status") == "failed" and bool(summary.get("failure_reason"))


# ----------------------------------------------------------------------------------------- atomic files
def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, create_dirs: bool = True,
                 fsync: bool = False) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it onto `path` (never half a file).

    create_dirs=False raises FileNotFoundError naming `path` when its folder does not exist; fsync=True flushes
    the file to disk before the rename (datasets that other processes read)."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if create_dirs:
        os.makedirs(d, exist_ok=True)
    elif not os.path.isdir(d):
        raise FileNotFoundError(f"{path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=d)
    os.close(fd)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonable(v: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def json_text(obj: Any) -> str:
    """The text every JSON result file is written with (indent 2, NaN -> null, trailing newline)."""
    return json.dumps(jsonable(obj), indent=2, default=str) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON file (NaN/inf -> null)."""
    write_text(path, json_text(obj))


def write_text(path: str | os.PathLike, text: str, *, create_dirs: bool = True) -> None:
    """Atomic text file (create_dirs: see `atomic_write`)."""

    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, w, create_dirs=create_dirs)


# ----------------------------------------------------------------------------------------- identity
def normalize_value(v: Any) -> Any:
    """Canonical form of a config value for comparisons: integral floats -> int, NaN -> None, tuples -> lists."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    if isinstance(v, dict):
        return {str(k): normalize_value(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [normalize_value(x) for x in v]
    return str(v)


def key_id(fields: dict[str, Any]) -> str:
    """12-hex-digit id of a dict of config fields, independent of key order and of 3 vs 3.0."""
    norm = {str(k): normalize_value(v) for k, v in fields.items()}
    text = json.dumps(norm, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def identity_fields(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a trial this trial: the config minus bookkeeping, `trial_id` and sweep-private `_` keys."""
    drop = set(BOOKKEEPING) | {TRIAL_ID}
    return {k: v for k, v in config.items() if k not in drop and not str(k).startswith("_")}


def setting_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The setting of a trial: its identity minus `seed` (what its seeds repeat)."""
    return {k: v for k, v in identity_fields(config).items() if k != "seed"}


def pair_fields(config: dict[str, Any], extra_ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pairing key: the setting minus `model`, the QCBM-only fields (not `n`) and `extra_ignored`."""
    drop = set(QCBM_ONLY) | {"model"} | set(extra_ignored)
    return {k: v for k, v in setting_fields(config).items() if k not in drop}


def trial_key(config: dict[str, Any]) -> str:
    """The identity hash of a trial (12 hex digits) over its *effective* config (`TrialConfig.to_dict()`)."""
    return key_id(identity_fields(config))


def setting_id(config: dict[str, Any]) -> str:
    """The hash of a trial's setting (identity minus seed)."""
    return key_id(setting_fields(config))


# ----------------------------------------------------------------------------------------- downstream.parquet
#: `qgan evaluate RUN_DIR` writes RUN_DIR/downstream.parquet: one row per trial, measure and setting (long
#: format), columns in this order. Not-applicable settings hold 0 (scarce_size), "" (augmentation) or -1
#: (classifier_seed). docs/analysis.md, "Downstream measures", says what each measure means.
DOWNSTREAM_SCHEMA: dict[str, tuple[str, str]] = {
    "trial_id": ("string", "the trial (config.json trial_id, else its folder name)"),
    "model": ("string", "arm: qcbm, bernoulli or product; `real` in the real-vs-real floor rows"),
    "phase": ("string", "the trial's phase (the scarce class of the classifier)"),
    "n": ("int64", "latent size of the trial"),
    "seed": ("int64", "the trial's seed"),
    "family": ("string", "augmentation, feature or physical"),
    "measure": ("string", "one of DOWNSTREAM_MEASURES"),
    "scarce_size": ("int64", "real images of the trial's phase in the classifier's training set (0: n/a)"),
    "augmentation": ("string", "none (real only), generated (plus the trial's images), gain (difference); '' n/a"),
    "classifier_seed": ("int64", "seed of the classifier's init and batches (-1: n/a)"),
    "value": ("float64", "the measure's value"),
}
DOWNSTREAM_COLUMNS: tuple[str, ...] = tuple(DOWNSTREAM_SCHEMA)
#: `model` of the floor rows: held-out real images measured in place of a trial's (n 0, seed -1).
REAL_FLOOR_MODEL = "real"
#: measure -> (family, higher is better, meaning).
DOWNSTREAM_MEASURES: dict[str, tuple[str, bool, str]] = {
    "accuracy": ("augmentation", True, "ferrite/bainite accuracy on the balanced held-out real test set"),
    "balanced_f1": ("augmentation", True, "macro F1 (mean of the two per-class F1) on the held-out real test set"),
    "frechet_distance": ("feature", False, "Frechet distance of generated vs real reference features"),
    "precision": ("feature", True, "share of generated features inside the real k-NN manifold (fidelity)"),
    "recall": ("feature", True, "share of real features inside the generated k-NN manifold (diversity)"),
    "phase_fraction_tv": ("physical", False, "total variation between generated and real phase-label fractions"),
    "phase_label_invalid": ("physical", False, "share of generated phase pixels farther than 1/4 label step from "
                                               "every allowed label 0..3"),
    "iq_w1": ("physical", False, "1-Wasserstein distance of the IQ pixel histograms (0..1)"),
    "kam_w1": ("physical", False, "1-Wasserstein distance of the KAM pixel histograms (degrees)"),
    "ks_w1": ("physical", False, "1-Wasserstein distance of the KS-deviation pixel histograms (degrees)"),
    "grain_area_w1": ("physical", False, "1-Wasserstein distance of the central-grain area fractions per image"),
}
#: The columns that name one measured quantity of a trial (its rows differ only in classifier_seed).
DOWNSTREAM_KEYS: tuple[str, ...] = ("family", "measure", "scarce_size", "augmentation")
#: The augmentation settings of the augmentation rows.
AUGMENTATIONS: tuple[str, ...] = ("none", "generated", "gain")
#: downstream.json (beside downstream.parquet): the settings and the real-data split of the evaluation.
DOWNSTREAM_META_FIELDS: dict[str, str] = {
    "settings": "every option of the evaluation (sizes, steps, seeds, image counts)",
    "split": "per dataset source: where the real images came from and how many went to each role",
    "trials": "trial ids evaluated",
    "skipped": "trial folders left out, with the reason",
    "headroom": "per phase, scarce size and measure: can the augmentation measure speak (augmentation_headroom)",
    "seconds": "wall time of the evaluation",
}
#: The real-only classifier is "at ceiling" when its mean accuracy reaches this: nothing can be gained.
HEADROOM_CEILING = 0.99
#: Columns of `augmentation_headroom` (downstream.json "headroom", report.md).
HEADROOM_COLUMNS: tuple[str, ...] = ("phase", "scarce_size", "measure", "classifier_seeds", "real_only",
                                     "real_gain", "real_gain_low", "real_gain_high", "verdict")
#: verdict -> meaning.
HEADROOM_VERDICTS: dict[str, str] = {
    "informative": "new real images raise the score (the gain's 95 % interval lies above 0): the task has room "
                   "and the measure can credit generated images that carry new information",
    "at ceiling": f"the real-only classifier already scores >= {HEADROOM_CEILING}: no arm can gain",
    "no headroom": "even new real images do not raise the score beyond seed noise: no arm can be credited",
}


def augmentation_headroom(frame):
    """Whether the augmentation measure of a downstream.parquet frame can speak, per phase, scarce size and
    measure: the real-only score and the gain of the real floor rows (n_generated *new real* images added to
    the scarce class) over classifier seeds, with a 95 % t interval. Returns a DataFrame (HEADROOM_COLUMNS);
    verdict as HEADROOM_VERDICTS. A generated set can only be credited where new real images gain."""
    import pandas as pd
    from scipy import stats

    aug = frame[(frame["family"].astype(str) == "augmentation")]
    rows = []
    for (phase, size, measure), g in aug.groupby(["phase", "scarce_size", "measure"], observed=True, sort=True):
        base = g[g["augmentation"].astype(str) == "none"].groupby("classifier_seed")["value"].first()
        gain = g[(g["model"].astype(str) == REAL_FLOOR_MODEL) & (g["augmentation"].astype(str) == "gain")]
        v = gain["value"].to_numpy(np.float64)
        mean = float(v.mean()) if len(v) else float("nan")
        if len(v) > 1 and v.std(ddof=1) > 0:
            half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        else:
            half = 0.0 if len(v) > 1 else float("nan")
        real_only = float(base.mean()) if len(base) else float("nan")
        if real_only >= HEADROOM_CEILING:
            verdict = "at ceiling"
        elif np.isfinite(half) and mean - half > 0:
            verdict = "informative"
        else:
            verdict = "no headroom"
        rows.append((str(phase), int(size), str(measure), int(len(base)), real_only, mean, mean - half,
                     mean + half, verdict))
    return pd.DataFrame(rows, columns=list(HEADROOM_COLUMNS))


def downstream_frame(rows: Iterable[dict[str, Any]]):
    """Rows -> pandas DataFrame with exactly the downstream.parquet columns and dtypes."""
    import pandas as pd

    df = pd.DataFrame.from_records(list(rows), columns=list(DOWNSTREAM_COLUMNS))
    for name, (dtype, _) in DOWNSTREAM_SCHEMA.items():
        df[name] = df[name].astype(dtype)
    return df
