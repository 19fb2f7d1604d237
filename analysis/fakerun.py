"""Hand-made run directories in the per-trial result layout of docs/interfaces.md (for tests and demos).

`write_trial` writes one trial folder (config.json, epochs.parquet, summary.json, optional samples.npz);
`make_run` writes a small grid whose MMD curves follow a known law, so the analysis has known answers:
mmd(epoch) = final * (1 + 4 exp(-epoch / tau)) + noise, with the QCBM's `final` = Bernoulli's / (1 + effect).
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qgan import results
from qgan.config import TrialConfig

#: A small, valid trial config (every TrialConfig field; `TrialConfig.from_dict` accepts it).
BASE_CONFIG: dict[str, Any] = dataclasses.asdict(TrialConfig(
    train_size=64, eval_size=32, epochs=10, batch_size=16, width=8, n=4, qcbm_samples=64, spsa_calibrate=True,
    n_samples_saved=0))


def write_trial(folder: str | os.PathLike, config: dict[str, Any], mmd: Sequence[float],
                status: str = "completed", failure_reason: str | None = None, mmd_floor: float = 0.01,
                samples: int = 0, rng: np.random.Generator | None = None,
                summary_overrides: dict[str, Any] | None = None) -> Path:
    """Write one trial folder through the result contract (qgan.results). mmd: (E,) per-epoch MMD (NaN = not
    evaluated); its length sets the epochs done.

    samples > 0 writes samples.npz with `real` and `generated` uint8 (samples, 5, 60, 60)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    mmd = np.asarray(mmd, dtype=np.float64)
    e = len(mmd)
    epoch = np.arange(1, e + 1)
    upd = (config.get("model") == "qcbm") & (epoch % max(1, int(config.get("update_every", 30))) == 0) \
        & (epoch <= int(config.get("qcbm_epochs", 100)))
    calls = np.cumsum(upd * 2 * 8) if config.get("model") == "qcbm" else np.zeros(e, dtype=np.int64)
    records = [{**results.empty_record(int(ep)), "mmd": float(m), "loss_d": -float(m), "loss_g": 0.5 * float(m),
                "wasserstein": 2.0 * float(m), "gp": 0.1, "qcbm_updated": bool(u),
                "qcbm_loss": -float(m) if u else math.nan, "circuit_calls": int(c), "seconds": 0.5}
               for ep, m, u, c in zip(epoch, mmd, upd, calls)]
    results.write_json(d / "config.json", config)
    results.write_epochs(d / "epochs.parquet", records)
    theta = [0.0] * 4 if config.get("model") == "qcbm" else None
    summary = results.summarize(records, status, failure_reason, mmd_floor, int(calls[-1]) if e else 0, theta)
    summary.update(summary_overrides or {})
    results.write_json(d / "summary.json", summary)
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
