"""Sweep grids: readable presets and their expansion into one config dict per trial.

A preset is a base trial config plus grid axes. `expand()` turns it into the explicit list of trial configs
that Ray Tune runs (one `tune.grid_search` over whole configs), with the pairing rule of docs/interfaces.md:
a Bernoulli trial does not depend on QCBM-only settings (`update_every`, `qcbm_lr`, ...), so it runs once per
(phase, n, train_size, seed, other shared settings) and analysis pairs it with every QCBM setting.

Every trial dict carries `_trial_id` (deterministic and readable, e.g.
`ferrite-qcbm-n4-ts3000-ue30-s0-1a2b3c`); keys starting with `_` are sweep bookkeeping and are stripped before
`TrialConfig.from_dict` (see `sweeps.trainable.split_config`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# docs/interfaces.md: QCBM_ONLY = fields a Bernoulli trial ignores (n is shared: it is also the Bernoulli latent
# size); BOOKKEEPING = fields that never change a trial's identity. One definition each, in qgan.results; the
# `--set` parser is qgan.config's. All re-exported for the sweep layer.
from qgan.config import TrialConfig, parse_set  # noqa: F401
from qgan.results import BOOKKEEPING, MODELS, PHASES, QCBM_ONLY, ignored_fields, trial_key  # noqa: F401

# Short names used in readable trial ids, in this order.
_ID_PARTS = (("n", "n"), ("train_size", "ts"), ("update_every", "ue"), ("seed", "s"))


@dataclass
class Preset:
    """A grid: `base` (fields common to all trials) and `axes` (field -> list of values, cartesian product).

    `models` lists the latent models to run; QCBM-only axes are dropped for the Bernoulli model.
    """

    name: str
    phase: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    models: tuple[str, ...] = ("qcbm", "bernoulli")
    description: str = ""
    max_failures: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# The presets. Keep them plain: a reader should see the study at a glance.

_SMOKE_BASE = {
    # tiny everything: minutes on 2 CPUs, every code path (QCBM updates, MMD, checkpoints) exercised
    "data_source": "synthetic",
    "data_seed": 0,
    "eval_size": 16,
    "epochs": 4,
    "batch_size": 16,
    "width": 4,
    "qcbm_epochs": 4,
    "qcbm_samples": 64,
    "eval_every": 1,
    "checkpoint_every": 1,
    "n_samples_saved": 4,
}
_SMOKE_AXES = {
    "n": [2, 4],
    "train_size": [16, 32],
    "update_every": [1, 2],  # QCBM-only
    "seed": [0, 1],
}

# spec.md §5.1: n over {4,6,8,10,12}, 9000 and 3000 training images, 4000 epochs, QCBM trained for the first
# 100 epochs, updated every 30 (ferrite) / 10 (bainite) epochs, 5 independent runs per case.
_PAPER_BASE = {
    "data_source": "synthetic",
    "data_seed": 0,
    "epochs": 4000,
    "qcbm_epochs": 100,
    "checkpoint_every": 50,
}
_PAPER_AXES = {
    "n": [4, 6, 8, 10, 12],
    "train_size": [9000, 3000],
    "seed": [0, 1, 2, 3, 4],
}
_PAPER_UPDATE_EVERY = {"ferrite": 30, "bainite": 10}


# pilot (ours): a first real answer in under an hour on 2 CPU cores. Ferrite, n=8, 512 images, width 8, 150 epochs
# (the MMD falls from ~59 to well below half of it), the three arms, 8 paired seeds. The prior is trained for the
# first 60 epochs (6 updates): far more than the paper's 2.5 %, so that a trainable prior has room to matter in a
# short run. docs/results/pilot-ferrite.md holds its outcome.
_PILOT_BASE = {
    "data_source": "synthetic",
    "data_seed": 0,
    "n": 8,
    "train_size": 512,
    "eval_size": 128,
    "batch_size": 64,
    "width": 8,
    "epochs": 150,
    "eval_every": 1,
    "update_every": 10,
    "qcbm_epochs": 60,
    "qcbm_samples": 1000,
    "checkpoint_every": 25,
    "n_samples_saved": 4,
}
_PILOT_AXES = {"seed": list(range(8))}
THREE_ARMS = ("qcbm", "product", "bernoulli")

# study (ours): both phases, n in {8, 12}, the three arms, seeds from the power calculation in docs/sweeps.md
# (STUDY_SEEDS paired seeds detect RI = 20 % at alpha 0.05 with power 0.8 given the paired spread of log MMD
# measured in the pilot). The QCBM schedule keeps the paper's share of training: the first 2.5 % of 1200 epochs
# = 30 epochs, updated every 10 (ferrite: 3 updates, as 30/60/90 of 100) or every 3 (bainite: 10 updates).
STUDY_SEEDS = 8  # power calc on the pilot spreads gives the 6-seed floor; 8 keeps power 0.8 up to paired sd 0.15
_STUDY_BASE = {
    "data_source": "synthetic",
    "data_seed": 0,
    "train_size": 3000,
    "eval_size": 256,
    "batch_size": 64,
    "width": 32,
    "epochs": 1200,
    "eval_every": 2,
    "qcbm_epochs": 30,
    "qcbm_samples": 1000,
    "checkpoint_every": 50,
}
_STUDY_UPDATE_EVERY = {"ferrite": 10, "bainite": 3}


def get_preset(name: str, phase: str) -> Preset:
    """The preset `name` (smoke, pilot, study, paper) for `phase` ("ferrite" or "bainite")."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if name == "smoke":
        return Preset("smoke", phase, {"phase": phase, **_SMOKE_BASE}, {k: list(v) for k, v in _SMOKE_AXES.items()},
                      description="CPU minutes: both models, n 2/4, 2 train sizes, 2 update periods, 2 seeds",
                      max_failures=2)
    if name == "pilot":
        return Preset("pilot", phase, {"phase": phase, **_PILOT_BASE}, {k: list(v) for k, v in _PILOT_AXES.items()},
                      models=THREE_ARMS, max_failures=2,
                      description="under an hour on 2 CPUs: n=8, 512 images, width 8, 150 epochs, 3 arms, 8 seeds")
    if name == "study":
        axes = {"n": [8, 12], "seed": list(range(STUDY_SEEDS)), "update_every": [_STUDY_UPDATE_EVERY[phase]]}
        return Preset("study", phase, {"phase": phase, **_STUDY_BASE}, axes, models=THREE_ARMS, max_failures=3,
                      description=f"power-sized: n 8/12, 3000 images, width 32, 1200 epochs, 3 arms, "
                                  f"{STUDY_SEEDS} seeds")
    if name == "paper":
        axes = {k: list(v) for k, v in _PAPER_AXES.items()}
        axes["update_every"] = [_PAPER_UPDATE_EVERY[phase]]
        return Preset("paper", phase, {"phase": phase, **_PAPER_BASE}, axes,
                      description="spec.md §5: n 4..12, 9000/3000 images, 4000 epochs, 5 seeds", max_failures=3)
    raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")


PRESETS = ("smoke", "pilot", "study", "paper")


# --------------------------------------------------------------------------------------------------------------
# Overrides


def load_base_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML mapping of config fields (e.g. the best config written by sweeps/tune.py)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"base config {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ValueError(f"base config {p}: not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"base config {p}: expected a mapping of config fields, got {type(data).__name__}")
    if isinstance(data.get("config"), dict):  # tune.py's file: {"config": {...}, "metric": ..., ...}
        data = data["config"]
    return data


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """Return a copy of `preset` with `overrides` applied to every trial.

    A key that is a grid axis replaces the axis (a list sets the values, a scalar fixes it); `models` may be set
    to a subset of MODELS; any other key goes into the base config.
    """
    base = dict(preset.base)
    axes = {k: list(v) for k, v in preset.axes.items()}
    models = preset.models
    for key, value in overrides.items():
        if key == "models" or key == "model":
            vals = value if isinstance(value, list) else [value]
            bad = [m for m in vals if m not in MODELS]
            if bad or not vals:
                raise ValueError(f"--set {key}: models must be a non-empty subset of {list(MODELS)}, got {value!r}")
            models = tuple(vals)
        elif key == "phase" and value != preset.phase:
            raise ValueError(f"--set phase={value} conflicts with this script's phase {preset.phase!r}; "
                             f"use sweeps/{value}.py")
        elif key in axes:
            vals = value if isinstance(value, list) else [value]
            if not vals:
                raise ValueError(f"--set {key}: empty list")
            axes[key] = vals
        else:
            base[key] = value
    return Preset(preset.name, preset.phase, base, axes, models, preset.description, preset.max_failures,
                  dict(preset.extra))


# --------------------------------------------------------------------------------------------------------------
# Expansion


def setting_key(config: dict[str, Any]) -> str:
    """Short hash of a trial's identity: `qgan.results.trial_key` of its effective config (defaults filled in),
    so that a field left at its default and the same value spelt out name the same trial."""
    fields = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        fields = TrialConfig.from_dict(fields).to_dict()
    except ValueError:
        pass  # an invalid trial keeps its raw fields; the trainable records why it is invalid
    return trial_key(fields)[:6]


def trial_id(config: dict[str, Any]) -> str:
    """Deterministic, readable id: `<phase>-<model>-n<n>-ts<train>-[ue<k>-]s<seed>-<hash>`."""
    parts = [str(config.get("phase", "x")), str(config.get("model", "x"))]
    for key, short in _ID_PARTS:
        if key in config and key not in ignored_fields(str(config.get("model"))):
            parts.append(f"{short}{config[key]}")
    parts.append(setting_key(config))
    return "-".join(parts)


def expand(preset: Preset) -> list[dict[str, Any]]:
    """All trial config dicts of `preset` (each with `_trial_id`), in `preset.models` order, each model's trials
    deduplicated over the settings it ignores."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for model in preset.models:
        base = dict(preset.base)
        axes = dict(preset.axes)
        # settings a model does not read (bernoulli: circuit and prior fields; product: circuit fields) are
        # dropped, so that its trial runs once per setting it does depend on
        drop = set(ignored_fields(model))
        base = {k: v for k, v in base.items() if k not in drop}
        axes = {k: v for k, v in axes.items() if k not in drop}
        keys = list(axes)
        for values in itertools.product(*(axes[k] for k in keys)):
            cfg = {**base, **dict(zip(keys, values)), "model": model}
            tid = trial_id(cfg)
            if tid in seen:
                continue
            seen.add(tid)
            cfg["_trial_id"] = tid
            out.append(cfg)
    # Side by side: each shared setting's QCBM and Bernoulli trials next to each other in launch order.
    shared = [k for k in preset.axes if k not in QCBM_ONLY]  # what every arm reads
    order = {m: i for i, m in enumerate(preset.models)}
    out.sort(key=lambda c: (tuple(preset.axes[k].index(c[k]) for k in shared), order[c["model"]]))
    return out


def describe(preset: Preset) -> str:
    """A few lines describing the grid (printed by the entry scripts)."""
    trials = expand(preset)
    counts = {m: sum(1 for t in trials if t["model"] == m) for m in preset.models}
    axes = ", ".join(f"{k}={v}" for k, v in preset.axes.items())
    return (f"preset {preset.name} ({preset.phase}): {len(trials)} trials "
            f"({', '.join(f'{c} {m}' for m, c in counts.items())}); axes: {axes}")
