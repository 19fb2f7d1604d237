"""The Ray Tune function trainable: one QCBM-WGAN or Bernoulli-WGAN trial = one `qgan.train.run_trial` call.

Per epoch it reports the epoch record (plus `qgan_trial_id` (METRIC_TRIAL_ID), `mmd_last`, `trial_status`) with
`ray.tune.report`. A restarted trial (crash retry, `--resume`) continues from the checkpoint in its trial folder
(local / shared storage) or, on URI storage, from `ray.tune.get_checkpoint()`, which the trainable reports with
every checkpoint run_trial writes. qgan's per-trial files go to `<run_dir>/trials/<trial_id>/` (config.json,
epochs.parquet, summary.json, ...), plus `attempts.jsonl`, one line per start of the trainable.

Config keys starting with `_` are sweep bookkeeping, stripped before `TrialConfig.from_dict`:
  `_trial_id`       the trial's readable id (sweeps.presets.trial_id when absent)
  `_crash_at_epoch` test hook: raise after reporting this epoch, once per trial (a marker file remembers)
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
import traceback
from typing import Any, Callable

from ray import tune

from qgan import results
from sweeps.presets import trial_id as make_trial_id
from sweeps.storage import Store

#: The key of the trial's qgan id in every Tune metric dict (Tune's own `trial_id` is a different id).
METRIC_TRIAL_ID = "qgan_trial_id"

CHECKPOINT_META = "_sweep.json"  # beside every checkpoint, also in Tune's copies: {"epoch": int, "trial_id": str}
CRASH_MARKER = ".crash_injected"


class InjectedCrash(RuntimeError):
    """Raised by the `_crash_at_epoch` test hook."""


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a Tune config into (TrialConfig fields, sweep-private `_` keys).

    Grid sweeps pass the whole trial dict under `config["trial"]`; searches (Optuna) pass it flat.
    """
    flat = dict(config)
    nested = flat.pop("trial", None)
    if isinstance(nested, dict):
        flat = {**nested, **flat}
    fields = {k: v for k, v in flat.items() if not k.startswith("_")}
    private = {k: v for k, v in flat.items() if k.startswith("_")}
    return fields, private


def make_trial_config(config: dict[str, Any]):
    """The one place a Ray config dict becomes a `qgan.train.TrialConfig` (ValueError on bad values)."""
    from qgan.train import TrialConfig

    fields, _ = split_config(config)
    return TrialConfig.from_dict(fields)


def config_trial_id(config: dict[str, Any]) -> str:
    fields, private = split_config(config)
    return str(private.get("_trial_id") or make_trial_id(fields))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> float:
    return float(x) if _finite(x) else math.nan


def _metrics(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
            out[k] = v
        elif hasattr(v, "item"):  # numpy / torch scalars
            out[k] = v.item()
    return out


def train_trial(config: dict[str, Any], *, run_dir: str, threads: int | None = None,
                backend: Any = None) -> None:
    """Ray Tune function trainable for one trial.

    config: a trial dict (flat, or under "trial"); run_dir: the run directory (local path or URI) where
    `trials/<trial_id>/` is written; threads: torch intra-op threads (the trial's CPU share); backend: a
    `qgan.quantum.Backend` or a callable `(TrialConfig, trial_id) -> Backend` passed to run_trial (e.g. the QPU gateway
    client); None uses `config.backend`.
    """
    # one "Checkpoint successfully created" INFO line per epoch and trial drowns the driver's output
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    fields, private = split_config(config)
    tid = config_trial_id(config)
    store = Store(run_dir)
    rel = ("trials", tid)

    def write_failure(reason: str, epochs_completed: int = 0, replace: bool = False) -> None:
        """summary.json of a failure outside the epoch loop; keeps the trainer's own record unless `replace`."""
        if not store.exists(*rel, "config.json"):
            store.write_text(results.json_text({**fields, results.TRIAL_ID: tid}), *rel, "config.json")
        old: dict[str, Any] = {}
        if store.exists(*rel, "summary.json"):  # keep what run_trial already summarised (metrics, theta)
            try:
                old = store.read_json(*rel, "summary.json")
            except (ValueError, OSError):
                old = {}
        if not replace and results.records_failed_by_trainer(old):
            return
        store.write_text(results.json_text(results.failed_summary(reason, epochs_completed, previous=old)),
                         *rel, "summary.json")

    # 1. A bad config is the user's error: record it once and end normally, so Tune does not retry it.
    try:
        cfg = make_trial_config(config)
    except ValueError as exc:
        reason = f"invalid config: {exc}"
        write_failure(reason)
        store.append_line(json.dumps({"kind": "invalid", "time": time.time(), "reason": str(exc)}),
                          *rel, "attempts.jsonl")
        tune.report({METRIC_TRIAL_ID: tid, "trial_status": "failed", "failure_reason": reason, "epoch": 0,
                     "mmd_last": math.nan})
        return

    # 2. Finished already (the driver died after the trial ended but before Tune recorded it): do not rerun.
    if store.exists(*rel, "summary.json"):
        try:
            done = store.read_json(*rel, "summary.json")
        except (ValueError, OSError):
            done = {}
        if done.get("status") == "completed" and int(done.get("epochs_completed") or 0) >= cfg.epochs:
            store.append_line(json.dumps({"kind": "skip", "time": time.time(), "pid": os.getpid()}),
                              *rel, "attempts.jsonl")
            tune.report({METRIC_TRIAL_ID: tid, "trial_status": "completed", "epoch": int(done["epochs_completed"]),
                         "mmd_last": _num(done.get("mmd_final")), "skipped": True})
            return

    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))

    work = tempfile.mkdtemp(prefix=f"qgan-trial-{tid[:40]}-")
    out_dir = store.path(*rel) if not store.uri else os.path.join(work, tid)
    # Checkpoints. On a local/shared-filesystem storage run_trial writes them straight into
    # trials/<id>/checkpoint/ (atomically): that copy is never older than anything Tune could record, which
    # matters when the driver died before Tune saved its state, and it is the only one (reporting it to Tune too
    # would copy every checkpoint and force an experiment snapshot every `num_to_keep` checkpoints). On a URI
    # storage each checkpoint is reported to Tune (ray.tune.report), whose copy (ray.tune.get_checkpoint) is
    # the only one.
    ckpt_dir = store.path(*rel, "checkpoint") if not store.uri else os.path.join(work, "checkpoint")
    resumed_from, source = _epoch_of(ckpt_dir), "trial folder"
    if resumed_from is None:
        resumed_from, source = 0, None
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            with ckpt.as_directory() as d:
                shutil.copytree(d, ckpt_dir)
            resumed_from, source = _epoch_of(ckpt_dir) or 0, "tune"
    store.append_line(json.dumps({"kind": "resume" if source else "start", "time": time.time(),
                                  "resumed_from_epoch": resumed_from, "checkpoint": source, "pid": os.getpid()}),
                      *rel, "attempts.jsonl")

    crash_at = private.get("_crash_at_epoch")
    state: dict[str, Any] = {"epoch": resumed_from, "mmd_last": math.nan, "first": None, "error": None}

    def on_epoch(record: dict[str, Any], checkpoint_dir: str | None) -> None:
        epoch = int(record["epoch"])
        state["epoch"] = epoch
        if state["first"] is None:
            state["first"] = epoch
        if _finite(record.get("mmd")):
            state["mmd_last"] = float(record["mmd"])
        metrics = {**_metrics(record), METRIC_TRIAL_ID: tid, "mmd_last": state["mmd_last"], "trial_status": "running"}
        if epoch >= cfg.epochs:
            metrics["trial_status"] = "completed"
        crash = (crash_at is not None and epoch == int(crash_at) and not store.exists(*rel, CRASH_MARKER))
        if checkpoint_dir:
            _write_meta(checkpoint_dir, epoch, tid)
        if checkpoint_dir and store.uri:  # a local / shared-filesystem run keeps its checkpoint in the trial folder
            stage = os.path.join(work, f"report-{epoch}")
            shutil.copytree(checkpoint_dir, stage)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(stage))
            shutil.rmtree(stage, ignore_errors=True)  # Tune has persisted it to storage
        else:
            tune.report(metrics)
        if crash:
            store.write_text(json.dumps({"epoch": epoch, "time": time.time()}), *rel, CRASH_MARKER)
            raise InjectedCrash(f"injected crash at epoch {epoch} (_crash_at_epoch) in trial {tid}")

    trial_backend = backend
    if callable(backend) and not hasattr(backend, "sample"):
        trial_backend = backend(cfg, tid)  # identity flows one way: the sweep's id keys the trial's QPU requests

    from qgan.train import run_trial

    try:
        run_trial(cfg, on_epoch=on_epoch, checkpoint=ckpt_dir, out_dir=out_dir, backend=trial_backend, trial_id=tid)
        if store.uri:
            store.upload_dir(out_dir, *rel)
    except (ValueError, FileNotFoundError) as exc:
        if state["first"] is not None:
            raise
        # run_trial refused to start (a device that is not there, a missing data file): a user error, the same
        # on every retry, so it is recorded once and the trial ends without an exception (no retry)
        reason = f"{type(exc).__name__}: {exc}"
        state["error"] = reason
        write_failure(reason, state["epoch"])
        tune.report({METRIC_TRIAL_ID: tid, "trial_status": "failed", "failure_reason": reason,
                     "epoch": state["epoch"], "mmd_last": math.nan})
    except BaseException as exc:
        if getattr(exc, "ends_trial_as", None):
            state["error"] = record_refusal(config, run_dir, exc)  # no Tune retry
            return
        # Tune retries from the last checkpoint (FailureConfig.max_failures); the summary says why it stopped.
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        state["error"] = reason
        try:
            write_failure(reason, state["epoch"])
        except Exception:  # never mask the original error
            pass
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:  # which epochs this attempt ran: a resumed attempt starts right after its checkpoint
            store.append_line(json.dumps({"kind": "end", "time": time.time(), "first_epoch": state["first"],
                                          "last_epoch": state["epoch"], "error": state["error"]}),
                              *rel, "attempts.jsonl")
        except Exception:
            pass


def record_refusal(config: dict[str, Any], run_dir: str, exc: BaseException) -> str:
    """End a trial on a refusal that no retry can change (`exc.ends_trial_as`, e.g. the QPU budget): summary.json
    says failed with reason "<ends_trial_as>: <exc>", replacing the trainer's generic crash record but keeping
    what it measured, and one failed Tune report. Returns the reason."""
    fields, _ = split_config(config)
    tid = config_trial_id(config)
    store = Store(run_dir)
    rel = ("trials", tid)
    reason = f"{exc.ends_trial_as}: {exc}"  # type: ignore[attr-defined]
    old: dict[str, Any] = {}
    if store.exists(*rel, "summary.json"):
        try:
            old = store.read_json(*rel, "summary.json")
        except (ValueError, OSError):
            old = {}
    epochs = int(old.get("epochs_completed") or 0)
    if not store.exists(*rel, "config.json"):
        store.write_text(results.json_text({**fields, results.TRIAL_ID: tid}), *rel, "config.json")
    store.write_text(results.json_text(results.failed_summary(reason, epochs, previous=old)), *rel, "summary.json")
    tune.report({METRIC_TRIAL_ID: tid, "trial_status": "failed", "failure_reason": reason, "epoch": epochs,
                 "mmd_last": math.nan})
    return reason


def _write_meta(checkpoint_dir: str, epoch: int, tid: str) -> None:
    """Record which epoch the checkpoint in `checkpoint_dir` holds (atomic)."""
    results.write_json(os.path.join(checkpoint_dir, CHECKPOINT_META), {"epoch": epoch, "trial_id": tid})


def _epoch_of(checkpoint_dir: str) -> int | None:
    """Epoch of the checkpoint in a folder (None when the folder holds none)."""
    if not os.path.isdir(checkpoint_dir) or not [n for n in os.listdir(checkpoint_dir) if n != CHECKPOINT_META]:
        return None
    try:
        with open(os.path.join(checkpoint_dir, CHECKPOINT_META)) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError):
        return 0  # a checkpoint written just before the process died, before its epoch was noted


def make_trainable(run_dir: str, *, cpus: float = 1, gpus: float = 0, backend: Any = None) -> Callable:
    """`train_trial` bound to a run directory, with per-trial resources (fractional GPUs pack trials)."""
    threads = max(1, int(cpus)) if cpus else None
    fn = tune.with_parameters(train_trial, run_dir=run_dir, threads=threads, backend=backend)
    return tune.with_resources(fn, {"cpu": cpus, "gpu": gpus})
