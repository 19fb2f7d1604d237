"""Run one trial from a config file and/or --set overrides and write its result files (`qgan train`).

    qgan train [--config FILE.yaml|json] [--set key=value ...] --out DIR [--device cpu|cuda] [--resume]

Writes DIR/config.json, epochs.parquet, summary.json, samples.npz, samples.png and DIR/checkpoint/.
"""
from __future__ import annotations

import json
import os
from typing import Any

import yaml


def _load_config_file(path: str) -> dict[str, Any]:
    """The TrialConfig fields of a YAML/JSON file; a user error naming the file and the problem otherwise."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such config file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a config file")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a config file (not UTF-8 text; expected YAML or JSON)") from None
    except PermissionError:
        raise PermissionError(f"{path}: cannot read the config file (permission denied)") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML ({where}{problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        got = "plain text" if isinstance(data, str) else f"a {type(data).__name__}"
        raise ValueError(f"{path}: a config file must hold a mapping of TrialConfig fields (it reads as {got})")
    data.pop("trial_id", None)  # a config.json written by a previous trial
    return data


def build_config(args) -> "Any":
    """TrialConfig from the config file (or, with --resume, DIR/config.json), --set and --device; an invalid
    field is reported with where it was given (the file, --set or --device)."""
    import dataclasses

    from qgan.config import TrialConfig, parse_set

    path = args.config
    if not path and args.resume and os.path.exists(os.path.join(args.out, "config.json")):
        path = os.path.join(args.out, "config.json")
    given: dict[str, tuple[Any, str]] = {}  # field -> (value, where it was given)
    if path:
        given.update((k, (v, path)) for k, v in _load_config_file(path).items())
    given.update((k, (v, "--set")) for k, v in parse_set(args.set).items())
    if args.device:
        given["device"] = (args.device, "--device")
    fields = {f.name for f in dataclasses.fields(TrialConfig)}
    for where in dict.fromkeys(w for _, w in given.values()):
        unknown = sorted(k for k, (_, w) in given.items() if w == where and k not in fields)
        if unknown:
            raise ValueError(f"{where}: unknown config key(s): {', '.join(unknown)}")
    try:
        return TrialConfig.from_dict({k: v for k, (v, _) in given.items()})
    except ValueError as exc:
        msg = str(exc)
        field = msg.split(" ", 1)[0]
        where = given[field][1] if field in given else " and ".join(dict.fromkeys(w for _, w in given.values()))
        raise ValueError(f"{where}: {msg}" if where else msg) from None


def _check_out_dir(out: str) -> None:
    """--out must be a directory that exists or can be created, and be writable (checked before any work)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{out}: is a file; --out must be a directory")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{out}: cannot create the directory ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        where = "the directory" if parent == os.path.abspath(out) else f"its parent directory {parent}"
        raise PermissionError(f"{out}: cannot write the trial there ({where} is not writable)")


def _cmd_train(args) -> int:
    from qgan.train import CHECKPOINT_FILE, run_trial

    ckdir = os.path.join(args.out, "checkpoint")
    ckfile = os.path.join(ckdir, CHECKPOINT_FILE)
    if args.resume and not os.path.exists(ckfile):
        reuse = os.path.join(args.out, "config.json")
        fresh = "run without --resume" + (f" and with --config {reuse}" if not args.config and os.path.exists(reuse)
                                          else "")
        raise FileNotFoundError(f"{args.out}: no checkpoint to resume ({ckfile} does not exist); to start a fresh "
                                f"trial there, {fresh}")
    cfg = build_config(args)
    if os.path.exists(ckfile) and not args.resume:
        raise ValueError(f"{args.out} already holds a trial checkpoint; pass --resume to continue it or choose "
                         "another --out")
    _check_out_dir(args.out)
    result = run_trial(cfg, checkpoint=ckdir, out_dir=args.out, progress=not args.quiet)
    s = result.summary
    fmt = lambda v: "n/a" if v is None or v != v else f"{v:.4g}"  # noqa: E731
    print(f"{s['status']}: {s['epochs_completed']} epochs, MMD final {fmt(s['mmd_final'])}, "
          f"last-100 mean {fmt(s['mmd_last100'])}, real-vs-real floor {fmt(s['mmd_floor'])}, "
          f"circuit calls {s['circuit_calls']}, {s['seconds_total']:.1f} s -> {args.out}")
    if s["status"] == "failed":
        print(f"failure: {s['failure_reason']}")
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="run one trial (WGAN-GP with a Bernoulli or QCBM latent) and write its result files",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of TrialConfig fields (docs/train.md)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override one field (repeatable); the value is parsed as YAML (e.g. n=6, spsa_calibrate=true)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory of the trial")
    p.add_argument("--device", choices=None, metavar="cpu|cuda", help="override the config's device")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint (config from DIR/config.json "
                   "unless --config is given)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
