"""Command line of the grid sweeps (`sweeps/ferrite.py`, `sweeps/bainite.py`): preset -> Ray Tune -> run dir.

Ray as `ray.init()` finds it: the cluster named by `--address` / `RAY_ADDRESS` (set by `ray job submit`), else a
cluster started on this machine with `ray start`, else an embedded local Ray (`--local` forces the embedded one).
The driver prints one progress line (a bar on a terminal; `sweeps.progress`), not Tune's per-trial boxes
(`--verbose` brings those and Ray's INFO logs back). Results: `<storage>/<name>/` holds Tune's layout and `trials/<trial_id>/` per trial
(config.json, epochs.parquet, summary.json), read by `python -m analysis RUN_DIR`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from sweeps import presets as P
from sweeps.storage import Store, is_uri, join, normalize

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
DEFAULT_STORAGE = os.environ.get("QGAN_RUNS_DIR", "~/qgan-runs")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the grid scripts and sweeps/tune.py."""
    parser.add_argument("--preset", default="smoke", choices=P.PRESETS, help="grid preset (default: smoke)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE,
                        help="results root: a directory or a pyarrow URI such as s3://bucket/runs "
                             "(default: $QGAN_RUNS_DIR or ~/qgan-runs); must be shared by all nodes of a cluster")
    parser.add_argument("--name", default=None,
                        help="run name (folder under --storage); default <phase>-<preset>-<UTC time>; with "
                             "--resume and no --name: the latest <phase>-<preset>-* run")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run: finished trials are kept, unfinished and errored "
                             "trials continue from their last checkpoint")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="GPU share per trial; 0.25 packs four trials per GPU (sets device=cuda)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field in every trial (repeatable); a grid axis takes a "
                             "value or a list: --set n=4, --set seed=[0,1], --set models=qcbm")
    parser.add_argument("--base-config", default=None, metavar="FILE",
                        help="JSON/YAML of config fields applied before --set (e.g. sweeps/tune.py's best config)")
    parser.add_argument("--max-failures", type=int, default=None,
                        help="retries per crashed trial, from its last checkpoint (default: the preset's)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a cluster started here with "
                             "`ray start`, else an embedded local Ray)")
    parser.add_argument("--local", action="store_true",
                        help="always start an embedded local Ray, even where a cluster is running")
    parser.add_argument("--verbose", action="store_true",
                        help="Ray Tune's per-trial boxes and status tables and Ray's INFO logs, as well as "
                             "the progress line")
    parser.add_argument("--mlflow", default=None, metavar="URI",
                        help="also log every trial to MLflow at this tracking URI (e.g. sqlite:///path/mlflow.db or "
                             "http://host:5000; MLflow 3 refuses a plain file store); needs the [mlflow] extra")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded local Ray")
    parser.add_argument("--ray-temp-dir", default=None, help="temp dir of the embedded local Ray")


def build_parser(phase: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"sweeps/{phase}.py",
        description=f"Run the {phase} QCBM-WGAN vs Bernoulli-WGAN grid on Ray Tune.")
    add_common_args(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the trial list and exit")
    return parser


def build_preset(phase: str, args: argparse.Namespace) -> P.Preset:
    """The preset with --base-config, --set and the GPU device applied."""
    preset = P.get_preset(args.preset, phase)
    if args.base_config:
        base = P.load_base_config(args.base_config)
        base = {k: v for k, v in base.items() if k not in ("phase", "model", "seed", "trial_id")}
        preset = P.apply_overrides(preset, base)
    preset = P.apply_overrides(preset, P.parse_set(args.overrides))
    if args.gpus_per_trial > 0:
        preset = P.apply_overrides(preset, {"device": "cuda"})
    if args.gpus_per_trial < 0 or args.cpus_per_trial <= 0:
        raise ValueError("--gpus-per-trial must be >= 0 and --cpus-per-trial > 0")
    return preset


def validate(trials: list[dict[str, Any]]) -> None:
    """Reject the sweep before launching when any trial config is invalid (one line per distinct reason)."""
    from sweeps.trainable import make_trial_config

    errors: dict[str, list[str]] = {}
    for t in trials:
        try:
            make_trial_config(t)
        except ValueError as exc:
            errors.setdefault(str(exc), []).append(t["_trial_id"])
    if errors:
        lines = [f"{len(ids)} trial(s), e.g. {ids[0]}: {reason}" for reason, ids in errors.items()]
        raise ValueError(f"{sum(map(len, errors.values()))} of {len(trials)} trial configs are invalid "
                         f"(nothing was launched):\n  " + "\n  ".join(lines))


def resolve_run(storage: str, name: str | None, prefix: str, resume: bool) -> tuple[str, str]:
    """(storage, name) of the run: a new one, or with resume the named / latest existing one."""
    storage = normalize(storage)
    store = Store(storage)
    store.check_writable()  # before Ray starts: an unwritable --storage is one line, not a traceback
    if name is None:
        if resume:
            runs = [d for d in store.list_dirs() if d.startswith(prefix + "-")]
            if not runs:
                raise FileNotFoundError(f"--resume: no run {prefix}-* under {storage}; pass --name")
            name = runs[-1]
        else:
            name = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if "/" in name or not name:
        raise ValueError(f"--name must be a plain folder name, got {name!r}")
    exists = store.exists(name)
    if resume and not exists:
        raise FileNotFoundError(f"--resume: run {join(storage, name)} does not exist")
    if not resume and exists and store.exists(name, "trials"):
        raise ValueError(f"run {join(storage, name)} already exists: pass --resume to continue it or "
                         f"choose another --name")
    return storage, name


def running_cluster(temp_dir: str | None) -> str | None:
    """The address `ray.init()` would attach to: RAY_ADDRESS, else the last `ray start` on this machine."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None, temp_dir)
    except Exception:  # a private helper of Ray: if it moves, fall back to an embedded Ray
        return os.environ.get("RAY_ADDRESS") or None


class _TokenNotice:
    """Drops Ray's notice that a local cluster has token authentication on (a default, said at every start);
    its warning that authentication is *off* still shows."""

    def filter(self, record) -> bool:
        return "Token authentication is enabled" not in record.getMessage()


def init_ray(args: argparse.Namespace) -> bool:
    """Attach to a cluster as `ray.init()` does (--address, RAY_ADDRESS, a local `ray start`) or, with none or
    with --local, start an embedded Ray; True when embedded. A cluster that cannot be reached is one line."""
    import ray

    quiet = {} if getattr(args, "verbose", False) else {"logging_level": logging.WARNING}
    address = None if getattr(args, "local", False) else (args.address or running_cluster(args.ray_temp_dir))
    if address:
        try:
            ray.init(address=address, log_to_driver=True, **quiet)
        except ConnectionError as exc:
            raise ValueError(f"cannot attach to the Ray cluster at {address} ({exc}); start it, pass --address, "
                             f"or --local for an embedded Ray (a stale cluster: `ray stop`)") from None
        print(f"ray: attached to the cluster at {address}", flush=True)
        return False
    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    if not getattr(args, "verbose", False):
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_TokenNotice())
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, _temp_dir=args.ray_temp_dir,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **quiet)
    print(f"ray: embedded, {ray.cluster_resources().get('CPU', 0):g} CPUs; if this driver is killed, "
          f"`ray stop` ends the Ray processes it leaves", flush=True)
    return True


def check_resources(args: argparse.Namespace, embedded: bool) -> None:
    """On an embedded Ray (no autoscaler) a trial asking for more than the machine has would wait forever."""
    if not embedded:
        return
    import ray

    have = ray.cluster_resources()
    if args.gpus_per_trial > have.get("GPU", 0):
        raise ValueError(f"--gpus-per-trial {args.gpus_per_trial} but this machine's Ray has "
                         f"{have.get('GPU', 0):g} GPU(s)")
    if args.cpus_per_trial > have.get("CPU", 0):
        raise ValueError(f"--cpus-per-trial {args.cpus_per_trial} but this machine's Ray has "
                         f"{have.get('CPU', 0):g} CPU(s)")


def trial_dirname(trial) -> str:
    from sweeps.trainable import config_trial_id

    return config_trial_id(trial.config)


def run_grid(phase: str, argv: list[str] | None = None) -> int:
    args = build_parser(phase).parse_args(argv)
    preset = build_preset(phase, args)
    trials = P.expand(preset)
    print(P.describe(preset), flush=True)
    validate(trials)
    if args.dry_run:
        from sweeps.cost import cost_line

        for t in trials:
            print(" ", t["_trial_id"])
        print(cost_line(trials, cpus=os.cpu_count()))
        return 0
    storage, name = resolve_run(args.storage, args.name, f"{phase}-{preset.name}", args.resume)
    run_dir = join(storage, name)
    store = Store(run_dir)
    if args.resume and store.exists("sweep.json"):
        saved = store.read_json("sweep.json").get("trials")
        if isinstance(saved, list) and saved and all(isinstance(t, dict) for t in saved):
            if args.overrides or args.base_config:
                print("note: --resume continues the run's own trial configs (sweep.json); "
                      "--set / --base-config are ignored", flush=True)
            trials = saved

    import ray
    from ray import tune

    from sweeps.trainable import make_trainable

    print(f"results: {run_dir}\n  when done: python -m analysis {run_dir}\n  if interrupted: the same command "
          f"with --resume --name {name}", flush=True)
    embedded = init_ray(args)
    try:
        check_resources(args, embedded)
        trainable = make_trainable(run_dir, cpus=args.cpus_per_trial, gpus=args.gpus_per_trial)
        max_failures = preset.max_failures if args.max_failures is None else args.max_failures
        if not (args.resume and tune.Tuner.can_restore(run_dir)):
            store.write_text(json.dumps({"phase": phase, "preset": preset.name, "argv": sys.argv[1:],
                                         "trials": trials}, indent=2, default=str), "sweep.json")
        results = fit_grid(trainable, trials, args, run_dir, max_failures=max_failures,
                           max_concurrent=args.max_concurrent)
    finally:
        if embedded:  # before the report: what exiting workers print at shutdown must not follow its last line
            ray.shutdown()
    return 0 if report(run_dir, trials, results) else 1


def fit_grid(trainable, trials: list[dict[str, Any]], args: argparse.Namespace, run_dir: str, *,
             max_failures: int, max_concurrent: int | None = None, reuse_actors: bool = True):
    """Run the grid `trials` on Ray Tune (a new run, or with --resume the run's own state) behind the progress
    line and any --mlflow logger; returns Tune's ResultGrid. The one Tuner of the grid scripts and the QPU
    campaign."""
    from ray import tune

    progress = make_progress(run_dir, trials)
    callbacks = [progress, *tracking_callbacks(args, run_name(run_dir))]
    verbose = tune_verbosity(args)
    if args.resume and tune.Tuner.can_restore(run_dir):
        print(f"resuming {run_dir}", flush=True)
        with quiet_restore():
            tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=True,
                                       restart_errored=False)
        refresh_run_config(tuner, callbacks, verbose)
    else:
        storage, name = run_dir.rstrip("/").rsplit("/", 1)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=reuse_actors,
                                        trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname),
            run_config=tune.RunConfig(
                name=name, storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=callbacks, verbose=verbose),
        )
    try:
        return tuner.fit()
    finally:
        progress.close()


def tune_verbosity(args: argparse.Namespace) -> int:
    """Tune's own console output: silent by default (the progress line speaks), boxes and tables with --verbose.

    Tune's newer output engine prints its experiment box, results path and TensorBoard hint even at verbose=0;
    its legacy engine (RAY_AIR_NEW_OUTPUT=0, Ray's documented switch) is silent at 0.
    """
    if getattr(args, "verbose", False):
        return 1
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    return 0


def make_progress(run_dir: str, trials: list[dict[str, Any]]):
    """The progress callback, counting epochs already finished in a resumed run from the trials' summaries."""
    from sweeps.progress import SweepProgress
    from sweeps.trainable import make_trial_config

    total = {t["_trial_id"]: make_trial_config(t).epochs for t in trials}
    done = {r["trial_id"]: int(r["epochs"]) for r in trial_statuses(run_dir, trials)
            if r["status"] == "completed" and r["epochs"]}
    return SweepProgress(total, done)


def tracking_callbacks(args: argparse.Namespace, name: str) -> list:
    """Experiment tracking callbacks (`--mlflow URI`: Ray Tune's MLflow logger, one MLflow run per trial)."""
    uri = getattr(args, "mlflow", None)
    if not uri:
        return []
    try:
        from ray.air.integrations.mlflow import MLflowLoggerCallback
        import mlflow  # noqa: F401  (the callback imports it only at setup)
    except ImportError:
        raise ValueError("--mlflow needs MLflow: pip install 'qgan-sweeps[mlflow]'") from None
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=name, save_artifact=False)]


@contextlib.contextmanager
def quiet_restore():
    """While Tune restores a run it reads every trial's results so far and warns "Failed to fetch metrics" for each
    trial that had started but not reported when the driver died (the usual state after a kill); those trials
    simply run again, so the warning is dropped here, and only here."""
    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def refresh_run_config(tuner, callbacks: list, verbose: int) -> None:
    """A restored Tuner keeps the callbacks and verbosity pickled at the run's start; give it this driver's."""
    local = getattr(tuner, "_local_tuner", None)
    run_config = getattr(local, "_run_config", None)
    if run_config is not None:
        run_config.callbacks = callbacks
        run_config.verbose = verbose


def trial_statuses(run_dir: str, trials: list[dict[str, Any]], results=None) -> list[dict[str, Any]]:
    """One row per trial: id, grid values, Tune status, qgan summary status, epochs, final MMD."""
    store = Store(run_dir)
    tune_status: dict[str, str] = {}
    if results is not None:
        from sweeps.trainable import config_trial_id

        for r in results:
            try:
                tid = config_trial_id(r.config or {})
            except Exception:
                continue
            tune_status[tid] = "ERROR" if r.error else "TERMINATED"
    rows = []
    for t in trials:
        tid = t["_trial_id"]
        summary: dict[str, Any] = {}
        if store.exists("trials", tid, "summary.json"):
            try:
                summary = store.read_json("trials", tid, "summary.json")
            except (ValueError, OSError):
                summary = {}
        rows.append({"trial_id": tid, "model": t.get("model"), "n": t.get("n"), "train_size": t.get("train_size"),
                     "update_every": t.get("update_every", "-"), "seed": t.get("seed"),
                     "tune": tune_status.get(tid, "?"), "status": summary.get("status", "missing"),
                     "epochs": summary.get("epochs_completed"), "mmd_final": summary.get("mmd_final"),
                     "reason": summary.get("failure_reason")})
    return rows


def run_name(run_dir: str) -> str:
    return run_dir.rstrip("/").rsplit("/", 1)[-1]


STATUS_FILE = "status.tsv"  # the whole per-trial table of the last driver run, beside sweep.json
FAILED_SHOWN = 10


def report(run_dir: str, trials: list[dict[str, Any]], results=None) -> bool:
    """Print the trial counts, the failed trials (at most FAILED_SHOWN), where the results are and the analysis
    command; the full table goes to `<run_dir>/status.tsv`. True when every trial completed."""
    rows = trial_statuses(run_dir, trials, results)
    cols = ("trial_id", "model", "n", "train_size", "update_every", "seed", "tune", "status", "epochs",
            "mmd_final", "reason")
    table = ["\t".join(cols)] + ["\t".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows]
    store = Store(run_dir)
    store.write_text("\n".join(table) + "\n", STATUS_FILE)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    bad = [r for r in rows if r["status"] != "completed"]
    print()
    for r in bad[:FAILED_SHOWN]:
        print(f"  {r['status']}: {r['trial_id']} after {r['epochs'] or 0} epochs"
              + (f": {r['reason']}" if r["reason"] else ""))
    if len(bad) > FAILED_SHOWN:
        print(f"  ... and {len(bad) - FAILED_SHOWN} more")
    print("trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f" (table: {join(run_dir, STATUS_FILE)})")
    print(f"results: {run_dir}")
    if is_uri(run_dir):
        print("the per-trial files are on remote storage; copy the run locally first, e.g. "
              f"`python -c \"import pyarrow.fs as f; f.copy_files('{run_dir}', 'run')\"`, then:")
        print("next: python -m analysis run")
    else:
        print(f"next: python -m analysis {run_dir}")
    if bad:
        print(f"continue the unfinished trials: the same command with --resume --name {run_name(run_dir)}")
    sys.stdout.flush()
    return counts.get("completed", 0) == len(rows)


def main(phase: str, argv: list[str] | None = None) -> int:
    """Entry point of sweeps/<phase>.py: user errors print one line `sweeps: error: ...` and exit 2."""
    from qgan.cli_errors import run_cli

    return run_cli("sweeps", lambda: run_grid(phase, argv), interrupted="continue with --resume")
