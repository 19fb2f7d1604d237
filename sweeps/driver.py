"""Command line of the grid sweeps (`sweeps/ferrite.py`, `sweeps/bainite.py`): preset -> Ray Tune -> run dir.

`ray.init()` attaches to the cluster named by `--address` / `RAY_ADDRESS` (set by `ray job submit`), else starts
an embedded local Ray. Results: `<storage>/<name>/` holds Tune's layout and `trials/<trial_id>/` per trial
(config.json, epochs.parquet, summary.json), read by `python -m analysis RUN_DIR`.
"""
from __future__ import annotations

import argparse
import json
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
                             f"(default: $QGAN_RUNS_DIR or ~/qgan-runs); must be shared by all nodes of a cluster")
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
                        help="Ray cluster address (default: $RAY_ADDRESS, else an embedded local Ray)")
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


def init_ray(args: argparse.Namespace) -> bool:
    """Attach to a cluster (--address / RAY_ADDRESS) or start an embedded Ray; True when embedded."""
    import ray

    address = args.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    pythonpath = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, _temp_dir=args.ray_temp_dir,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
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

    embedded = init_ray(args)
    try:
        check_resources(args, embedded)
        trainable = make_trainable(run_dir, cpus=args.cpus_per_trial, gpus=args.gpus_per_trial)
        max_failures = preset.max_failures if args.max_failures is None else args.max_failures
        if args.resume and tune.Tuner.can_restore(run_dir):
            print(f"resuming {run_dir}", flush=True)
            tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=True,
                                       restart_errored=False)
        else:
            store.write_text(json.dumps({"phase": phase, "preset": preset.name, "argv": sys.argv[1:],
                                         "trials": trials}, indent=2, default=str), "sweep.json")
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search(trials)},
                tune_config=tune.TuneConfig(max_concurrent_trials=args.max_concurrent, reuse_actors=True,
                                            trial_dirname_creator=trial_dirname,
                                            trial_name_creator=trial_dirname),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    verbose=1),
            )
        results = tuner.fit()
        ok = report(run_dir, trials, results)
    finally:
        if embedded:
            ray.shutdown()
    return 0 if ok else 1


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


def report(run_dir: str, trials: list[dict[str, Any]], results=None) -> bool:
    """Print the status table, where the results are and the analysis command; True when all completed."""
    rows = trial_statuses(run_dir, trials, results)
    print()
    print(f"{'trial_id':<48} {'tune':<10} {'status':<9} {'epochs':>6} {'mmd_final':>10}")
    for r in rows:
        mmd = f"{r['mmd_final']:.4g}" if isinstance(r["mmd_final"], (int, float)) else "-"
        print(f"{r['trial_id']:<48} {r['tune']:<10} {r['status']:<9} {str(r['epochs'] or '-'):>6} {mmd:>10}")
        if r["status"] == "failed" and r["reason"]:
            print(f"{'':<4}reason: {r['reason']}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print()
    print("trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    print(f"results: {run_dir}")
    if is_uri(run_dir):
        print("the per-trial files are on remote storage; copy the run locally first, e.g. "
              f"`python -c \"import pyarrow.fs as f; f.copy_files('{run_dir}', 'run')\"`, then:")
        print("next: python -m analysis run")
    else:
        print(f"next: python -m analysis {run_dir}")
    sys.stdout.flush()
    return counts.get("completed", 0) == len(rows)


def main(phase: str, argv: list[str] | None = None) -> int:
    """Entry point of sweeps/<phase>.py: user errors print one line `sweeps: error: ...` and exit 2."""
    from qgan.cli_errors import run_cli

    return run_cli("sweeps", lambda: run_grid(phase, argv), interrupted="continue with --resume")
