"""Hyperparameter search with Optuna on Ray Tune: WGAN and QCBM settings for one phase and n.

    python sweeps/tune.py --phase ferrite --n 8 --preset paper --num-samples 40
    python sweeps/tune.py --preset smoke                      # 6 tiny trials, a minute or two on 2 CPUs

Searches lr_g, lr_d, fd_eps, qcbm_lr, gp_lambda and width for the QCBM model with `OptunaSearch`, minimising the
final MMD (`mmd_last`: the last evaluated MMD, i.e. the one at the last epoch). Ray Tune's ASHA scheduler stops
trials whose `mmd_last` trails the others at its rungs (epochs grace, grace*rf, ...; on by default except in the
smoke preset, where every trial should run the whole code path; `--asha` / `--no-asha`); only trials that ran
all their epochs compete for the best config. Writes
`<run dir>/best_config.yaml` ({"config": {searched fields}, "value": ..., ...}), which the grid scripts take as
`--base-config FILE`. Same storage / resources / --set flags as sweeps/ferrite.py.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parent)
if __name__ == "__main__":  # run as a script: sweeps/ is first on sys.path, the package lives one level up
    if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE:
        sys.path[0] = _ROOT
    elif _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

import yaml  # noqa: E402

from sweeps import presets as P  # noqa: E402
from sweeps.driver import (add_common_args, check_resources, init_ray, quiet_restore, refresh_run_config,  # noqa: E402
                           resolve_run, tracking_callbacks, trial_dirname, tune_verbosity)
from sweeps.storage import Store, join  # noqa: E402

METRIC = "mmd_last"
SEARCHED = ("lr_g", "lr_d", "fd_eps", "qcbm_lr", "gp_lambda", "width")


def search_space(preset: str) -> dict:
    """Ray Tune domains of the searched fields (log scales for rates and steps)."""
    from ray import tune

    space = {
        "lr_g": tune.loguniform(1e-5, 1e-3),
        "lr_d": tune.loguniform(1e-5, 1e-3),
        "fd_eps": tune.loguniform(0.02, 0.5),
        "qcbm_lr": tune.loguniform(0.01, 1.0),
        "gp_lambda": tune.loguniform(1.0, 30.0),
    }
    space["width"] = tune.choice([2, 4]) if preset == "smoke" else tune.choice([16, 32, 64, 96])
    return space


def base_config(args: argparse.Namespace) -> dict:
    """The fixed part of every searched trial: the preset's base for the phase, QCBM model, one n."""
    preset = P.get_preset(args.preset, args.phase)
    if args.base_config:
        preset = P.apply_overrides(preset, {k: v for k, v in P.load_base_config(args.base_config).items()
                                            if k not in ("phase", "model", "seed", "trial_id")})
    preset = P.apply_overrides(preset, P.parse_set(args.overrides))
    if args.gpus_per_trial > 0:
        preset = P.apply_overrides(preset, {"device": "cuda"})
    base = dict(preset.base)
    # one value per grid axis: the first (largest training set, first seed), the chosen n
    for key, values in preset.axes.items():
        base[key] = values[0]
    if args.n is not None:
        base["n"] = args.n
    base["model"] = "qcbm"
    for key in SEARCHED:
        base.pop(key, None)
    return base


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweeps/tune.py", description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--phase", default="ferrite", choices=P.PHASES)
    parser.add_argument("--n", type=int, default=None, help="qubits / latent size (default: the preset's first n)")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="trials to run (default: 6 for smoke, 40 for paper)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler")
    parser.add_argument("--out", default=None, help="also write the best config to this file (.yaml or .json)")
    parser.add_argument("--asha", action=argparse.BooleanOptionalAction, default=None,
                        help="early stopping with Ray Tune's ASHA scheduler on mmd_last (default: on, off for smoke)")
    parser.add_argument("--grace-period", type=int, default=None, metavar="EPOCHS",
                        help="ASHA: epochs every trial runs before it can be stopped (default: max(eval_every, "
                             "epochs/8))")
    parser.add_argument("--reduction-factor", type=float, default=3.0,
                        help="ASHA: 1/rf of the trials at a rung go on to the next (default 3)")
    return parser


def make_scheduler(args: argparse.Namespace, base: dict):
    """ASHA on `mmd_last` over epochs (None when off). Rungs start at the grace period, which is at least one
    evaluation interval so that every trial has an MMD when it is first compared."""
    use = args.asha if args.asha is not None else args.preset != "smoke"
    if not use:
        return None
    from ray.tune.schedulers import ASHAScheduler

    from sweeps.trainable import make_trial_config

    cfg = make_trial_config({**base, "lr_g": 1e-4, "lr_d": 1e-4, "fd_eps": 0.1, "qcbm_lr": 0.1, "gp_lambda": 10.0,
                             "width": 4})
    grace = args.grace_period or max(cfg.eval_every, cfg.epochs // 8)
    if not 1 <= grace <= cfg.epochs:
        raise ValueError(f"--grace-period must be between 1 and the trials' {cfg.epochs} epochs, got {grace}")
    if args.reduction_factor <= 1:
        raise ValueError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    return ASHAScheduler(time_attr="epoch", metric=METRIC, mode="min", max_t=cfg.epochs, grace_period=grace,
                         reduction_factor=args.reduction_factor)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = base_config(args)
    num_samples = args.num_samples or (6 if args.preset == "smoke" else 40)
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}")
    from sweeps.trainable import make_trial_config

    probe = {**base, "lr_g": 1e-4, "lr_d": 1e-4, "fd_eps": 0.1, "qcbm_lr": 0.1, "gp_lambda": 10.0, "width": 4}
    probe_cfg = make_trial_config(probe)  # a bad --set fails here, before anything is launched
    scheduler = make_scheduler(args, base)
    if not args.verbose:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" INFO line
    storage, name = resolve_run(args.storage, args.name, f"tune-{args.phase}-{args.preset}", args.resume)
    run_dir = join(storage, name)

    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.progress import SweepProgress
    from sweeps.trainable import make_trainable

    embedded = init_ray(args)
    try:
        check_resources(args, embedded)
        trainable = make_trainable(run_dir, cpus=args.cpus_per_trial, gpus=args.gpus_per_trial)
        progress = SweepProgress({}, expected=num_samples, epochs_each=probe_cfg.epochs)
        callbacks = [progress, *tracking_callbacks(args, name)]
        verbose = tune_verbosity(args)
        if args.resume and tune.Tuner.can_restore(run_dir):
            with quiet_restore():
                tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=True)
            refresh_run_config(tuner, callbacks, verbose)
        else:
            searcher = OptunaSearch(metric=METRIC, mode="min", seed=args.seed)
            max_conc = args.max_concurrent or 2
            tuner = tune.Tuner(
                trainable,
                param_space={**base, **search_space(args.preset)},
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                            max_concurrent_trials=max_conc, reuse_actors=True,
                                            trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname),
                run_config=tune.RunConfig(name=name, storage_path=storage,
                                          failure_config=tune.FailureConfig(max_failures=args.max_failures or 1),
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                          callbacks=callbacks, verbose=verbose),
            )
        try:
            results = tuner.fit()
        finally:
            progress.close()
    finally:
        if embedded:
            ray.shutdown()

    done = [r for r in results if r.error is None and r.metrics and _finite(r.metrics.get(METRIC))
            and r.metrics.get("trial_status") == "completed"]
    stopped = [r for r in results if r.error is None and r.metrics and r.metrics.get("trial_status") == "running"]
    print(f"\n{len(results)} trials, {len(done)} completed with a finite {METRIC}"
          + (f", {len(stopped)} stopped early by ASHA" if stopped else ""))
    if not done:
        print("no trial completed: no best config", file=sys.stderr)
        return 1
    best = min(done, key=lambda r: r.metrics[METRIC])
    from sweeps.trainable import split_config

    fields, _ = split_config(best.config)
    payload = {
        "config": {k: fields[k] for k in SEARCHED},
        "metric": METRIC, "value": float(best.metrics[METRIC]),
        "phase": args.phase, "n": fields.get("n"), "preset": args.preset,
        "trial_id": best.metrics.get("qgan_trial_id"), "trials": len(results), "completed": len(done),
        "full_config": fields,
    }
    text = yaml.safe_dump(payload, sort_keys=False)
    Store(run_dir).write_text(text, "best_config.yaml")
    target = join(run_dir, "best_config.yaml")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        Store(str(out.parent)).write_text(json.dumps(payload, indent=2) if out.suffix == ".json" else text, out.name)
        target = str(out)
    print(f"best {METRIC} = {payload['value']:.6g} ({payload['trial_id']}): "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in payload["config"].items()))
    print(f"best config: {target}")
    print(f"results: {run_dir}")
    print(f"next: python sweeps/{args.phase}.py --preset paper --base-config {target}")
    return 0


def _finite(x) -> bool:
    import math

    return isinstance(x, (int, float)) and math.isfinite(x)


def main(argv: list[str] | None = None) -> int:
    from qgan.cli_errors import run_cli

    return run_cli("sweeps", lambda: run(argv), interrupted="continue with --resume")


if __name__ == "__main__":
    sys.exit(main())
