"""`qgan evaluate RUN_DIR`: the command line of qgan.evaluate (torch is imported only when the command runs).

Options map onto `qgan.evaluate.EvalSettings`: a preset (--quick / --full, else the defaults) plus any size
flag given. User errors are one line and exit 2 (qgan.cli -> qgan.cli_errors.run_cli).
"""
from __future__ import annotations

from typing import Any, Iterable

def settings_from_args(args) -> Any:
    """EvalSettings from a preset (--quick / --full) and the explicit size flags."""
    from qgan.evaluate import PRESETS, EvalSettings

    base = dict(PRESETS["quick" if args.quick else "full" if args.full else "default"])
    for name in ("other_size", "test_size", "reference_size", "n_generated", "classifier_seeds",
                 "classifier_steps", "feature_steps", "seed"):
        v = getattr(args, name)
        if v is not None:
            base[name] = v
    if args.scarce_sizes:
        base["scarce_sizes"] = tuple(_ints(args.scarce_sizes))
    if args.channels is not None:
        base["channels"] = tuple(c.strip().lower() for c in args.channels.split(",") if c.strip())
    s = EvalSettings(**base)
    s.validate()
    return s


def _ints(text: str) -> Iterable[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--scarce-sizes expects comma-separated integers, got {text!r}") from None


def _cmd(args) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    import torch

    from qgan.evaluate import evaluate_run

    settings = settings_from_args(args)
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        res = evaluate_run(args.run_dir, settings, progress=not args.quiet, out=args.out)
    finally:
        torch.set_num_threads(previous)
    if not args.quiet:
        print(f"evaluate: {res['trials']} trials ({res['skipped']} skipped), {res['rows']} rows, "
              f"{res['seconds']:.1f} s -> {res['files'][0]}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="downstream measures of every completed trial -> downstream.parquet",
                              description="downstream measures of every completed trial -> RUN_DIR/downstream.parquet "
                                          "(docs/analysis.md, \"Downstream measures\")")
    p.add_argument("run_dir", help="run folder (trial folders with config.json, summary.json and checkpoint/)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sets and short training (tests, smoke runs)")
    size.add_argument("--full", action="store_true", help="large sets, 5 classifier seeds (study / paper runs)")
    p.add_argument("--scarce-sizes", metavar="A,B,..", help="real images of the trial's phase (default 25,50,100)")
    for flag, what in (("--other-size", "real images of the other phase"), ("--test-size", "test images per phase"),
                       ("--reference-size", "real reference images per phase (feature and physical)"),
                       ("--n-generated", "generated images per trial"), ("--classifier-seeds", "classifier seeds"),
                       ("--classifier-steps", "Adam steps per classifier"),
                       ("--feature-steps", "Adam steps of the feature classifier"), ("--seed", "evaluation seed")):
        p.add_argument(flag, type=int, default=None, metavar="N", help=what)
    p.add_argument("--channels", metavar="A,B,..", default=None,
                   help="channels the augmentation classifier sees, among iq,phase,kam,ks,mask (default all five; "
                        "fewer make a harder task where the five-channel one is at ceiling)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write downstream.parquet / .json and the cache here (default RUN_DIR; python -m analysis "
                        "reads them from RUN_DIR)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: these small networks run fastest on one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    p.set_defaults(func=_cmd)
