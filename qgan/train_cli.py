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
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such config file")
    with open(path) as fh:
        text = fh.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable config file ({str(exc).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of TrialConfig fields")
    data.pop("trial_id", None)  # a config.json written by a previous trial
    return data


def build_config(args) -> "Any":
    from qgan.config import TrialConfig, parse_set

    data: dict[str, Any] = {}
    if args.config:
        data.update(_load_config_file(args.config))
    elif args.resume and os.path.exists(os.path.join(args.out, "config.json")):
        data.update(_load_config_file(os.path.join(args.out, "config.json")))
    data.update(parse_set(args.set))
    if args.device:
        data["device"] = args.device
    return TrialConfig.from_dict(data)


def _cmd_train(args) -> int:
    from qgan.train import CHECKPOINT_FILE, run_trial

    cfg = build_config(args)
    ckdir = os.path.join(args.out, "checkpoint")
    if os.path.exists(os.path.join(ckdir, CHECKPOINT_FILE)) and not args.resume:
        raise ValueError(f"{args.out} already holds a trial checkpoint; pass --resume to continue it or choose "
                         "another --out")
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
