"""Hand-made run directories in the per-trial result layout of docs/interfaces.md (for tests and demos).

`write_trial` writes one trial folder (config.json, epochs.parquet, summary.json, optional samples.npz);
`make_run` writes a small grid whose MMD curves follow a known law, so the analysis has known answers:
mmd(epoch) = final * (1 + 4 exp(-epoch / tau)) + noise, with the QCBM's `final` = Bernoulli's / (1 + effect).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

BASE_CONFIG: dict[str, Any] = {
    "phase": "ferrite", "model": "bernoulli", "seed": 0, "data_source": "synthetic", "data_seed": 0,
    "train_size": 64, "eval_size": 32, "epochs": 10, "batch_size": 16, "lr_g": 1e-4, "lr_d": 1e-4,
    "beta1": 0.0, "beta2": 0.9, "gp_lambda": 10.0, "n_critic": 1, "width": 8, "n": 4, "layers": 1,
    "connectivity": "full", "theta_init": "uniform", "qcbm_optimizer": "fd", "qcbm_lr": 0.1, "fd_eps": 0.1,
    "qcbm_samples": 64, "qcbm_steps": 1, "spsa_iterations": 50, "spsa_a": None, "spsa_c": 0.2,
    "spsa_calibrate": True, "update_every": 30, "qcbm_epochs": 100, "backend": "exact", "eval_every": 1,
    "mmd_kernel": "energy", "device": "cpu", "checkpoint_every": 0, "n_samples_saved": 0,
}


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def write_trial(folder: str | os.PathLike, config: dict[str, Any], mmd: Sequence[float],
                status: str = "completed", failure_reason: str | None = None, mmd_floor: float = 0.01,
                samples: int = 0, rng: np.random.Generator | None = None,
                summary_overrides: dict[str, Any] | None = None) -> Path:
    """Write one trial folder. mmd: (E,) per-epoch MMD (NaN = not evaluated); its length sets the epochs done.

    samples > 0 writes samples.npz with `real` and `generated` uint8 (samples, 5, 60, 60)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    mmd = np.asarray(mmd, dtype=np.float64)
    e = len(mmd)
    epoch = np.arange(1, e + 1)
    upd = (config.get("model") == "qcbm") & (epoch % max(1, int(config.get("update_every", 30))) == 0) \
        & (epoch <= int(config.get("qcbm_epochs", 100)))
    calls = np.cumsum(upd * 2 * 8) if config.get("model") == "qcbm" else np.zeros(e, dtype=np.int64)
    ep = pd.DataFrame({
        "epoch": epoch.astype(np.int64), "mmd": mmd, "loss_d": -mmd, "loss_g": mmd * 0.5,
        "wasserstein": mmd * 2, "gp": np.full(e, 0.1), "qcbm_updated": upd.astype(bool),
        "qcbm_loss": np.where(upd, -mmd, np.nan), "circuit_calls": calls.astype(np.int64),
        "seconds": np.full(e, 0.5)})
    _dump(d / "config.json", config)
    ep.to_parquet(d / "epochs.parquet", index=False)
    fin = mmd[np.isfinite(mmd)]
    last = lambda w: float(np.nanmean(mmd[max(0, e - w):])) if np.isfinite(mmd[max(0, e - w):]).any() else None
    summary = {"status": status, "failure_reason": failure_reason, "epochs_completed": e,
               "mmd_last100": last(100), "mmd_last500": last(500),
               "mmd_final": float(fin[-1]) if len(fin) else None, "mmd_floor": mmd_floor,
               "circuit_calls": int(calls[-1]) if e else 0, "seconds_total": 0.5 * e,
               "theta": [0.0] * 4 if config.get("model") == "qcbm" else None}
    summary.update(summary_overrides or {})
    _dump(d / "summary.json", summary)
    if samples:
        rng = rng or np.random.default_rng(0)
        real = rng.integers(0, 256, size=(samples, 5, 60, 60), dtype=np.uint8)
        yy, xx = np.mgrid[0:60, 0:60]
        real[:, 4] = ((yy - 30) ** 2 + (xx - 30) ** 2 < 200) * 255
        gen = np.clip(real.astype(int) + rng.integers(-60, 60, size=real.shape), 0, 255).astype(np.uint8)
        np.savez(d / "samples.npz", real=real, generated=gen)
    return d


def make_run(root: str | os.PathLike, phases: Sequence[str] = ("ferrite", "bainite"), ns: Sequence[int] = (4, 6),
             train_sizes: Sequence[int] = (64, 128), seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
             effect: dict[tuple[str, int, int], float] | None = None, update_every: dict[str, int] | None = None,
             samples: int = 0, noise: float = 0.02, rng_seed: int = 0) -> list[Path]:
    """Write a grid: per (phase, n, train_size) one Bernoulli trial and one QCBM trial per seed.

    effect[(phase, n, train_size)] = RI the QCBM should reach (default 0.5); the trial ids are
    '<phase>-<model>-n<n>-t<train_size>-s<seed>'. Returns the trial folders."""
    rng = np.random.default_rng(rng_seed)
    upd = update_every or {"ferrite": 30, "bainite": 10}
    out = []
    ep = np.arange(1, epochs + 1)
    for phase in phases:
        for n in ns:
            for ts in train_sizes:
                ri = (effect or {}).get((phase, n, ts), 0.5)
                for seed in seeds:
                    fin_b = 0.2 * (1 + 0.1 * seed)
                    for model, fin in (("bernoulli", fin_b), ("qcbm", fin_b / (1 + ri))):
                        cfg = dict(BASE_CONFIG, phase=phase, model=model, seed=seed, n=n, train_size=ts,
                                   epochs=epochs, update_every=upd.get(phase, 30))
                        tid = f"{phase}-{model}-n{n}-t{ts}-s{seed}"
                        cfg["trial_id"] = tid
                        curve = fin * (1 + 4 * np.exp(-ep / max(1.0, epochs / 5))) \
                            + noise * fin * rng.standard_normal(epochs)
                        out.append(write_trial(Path(root) / tid, cfg, curve, samples=samples if seed == seeds[0] else 0,
                                               rng=rng))
    return out
