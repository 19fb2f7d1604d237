"""Hand-made run directories in the per-trial result layout of docs/interfaces.md (for tests and demos).

`write_trial` writes one trial folder (config.json, epochs.parquet, summary.json, optional samples.npz);
`make_run` writes a small grid whose MMD curves follow a known law, so the analysis has known answers:
mmd(epoch) = final * (1 + 4 exp(-epoch / tau)) + noise, with the QCBM's `final` = Bernoulli's / (1 + effect)
and the product's `final` = Bernoulli's / (1 + product_effect). Optionally the newer epoch columns (diversity,
prior diagnostics) and summary fields (diversity_real, diversity_final) are written with known values.
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

from . import schema

#: A small, valid trial config (every TrialConfig field; `TrialConfig.from_dict` accepts it).
BASE_CONFIG: dict[str, Any] = dataclasses.asdict(TrialConfig(
    train_size=64, eval_size=32, epochs=10, batch_size=16, width=8, n=4, qcbm_samples=64, spsa_calibrate=True,
    n_samples_saved=0))


#: Diversity written by make_run(diversity=True): the real set's and each arm's generated images'.
DIVERSITY = {"real": 0.5, "bernoulli": 0.40, "product": 0.42, "qcbm": 0.45}
TRAINED = schema.TRAINED_MODELS


def write_trial(folder: str | os.PathLike, config: dict[str, Any], mmd: Sequence[float],
                status: str = "completed", failure_reason: str | None = None, mmd_floor: float = 0.01,
                samples: int = 0, rng: np.random.Generator | None = None,
                summary_overrides: dict[str, Any] | None = None,
                epoch_extra: dict[str, Any] | None = None) -> Path:
    """Write one trial folder through the result contract (qgan.results). mmd: (E,) per-epoch MMD (NaN = not
    evaluated); its length sets the epochs done. epoch_extra: column -> (E,) values of further epoch columns.

    samples > 0 writes samples.npz with `real` and `generated` uint8 (samples, 5, 60, 60). epoch_extra:
    further epoch columns {name: (E,) values}, appended after the standard ones."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    mmd = np.asarray(mmd, dtype=np.float64)
    e = len(mmd)
    epoch = np.arange(1, e + 1)
    upd = (config.get("model") in TRAINED) & (epoch % max(1, int(config.get("update_every", 30))) == 0) \
        & (epoch <= int(config.get("qcbm_epochs", 100)))
    calls = np.cumsum(upd * 2 * 8) if config.get("model") == "qcbm" else np.zeros(e, dtype=np.int64)
    records = [{**results.empty_record(int(ep)), "mmd": float(m), "loss_d": -float(m), "loss_g": 0.5 * float(m),
                "wasserstein": 2.0 * float(m), "gp": 0.1, "qcbm_updated": bool(u),
                "qcbm_loss": -float(m) if u else math.nan, "circuit_calls": int(c), "seconds": 0.5}
               for ep, m, u, c in zip(epoch, mmd, upd, calls)]
    for name, values in (epoch_extra or {}).items():
        for rec, v in zip(records, list(values)):
            rec[name] = v
    results.write_json(d / "config.json", config)
    results.write_epochs(d / "epochs.parquet", records)
    theta = [0.0] * 4 if config.get("model") in TRAINED else None
    pool = (int(config.get("latent_pool") or 0) or int(config.get("qcbm_samples") or 1)) \
        if schema.uses_latent_pool(config) else 0  # what the trainer would report
    summary = results.summarize(records, status, failure_reason, mmd_floor, int(calls[-1]) if e else 0, theta,
                                latent_pool_size=pool)
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


def prior_diagnostics(model: str, n: int, updated: np.ndarray) -> dict[str, Any]:
    """Known prior diagnostics at the update epochs (k = 1, 2, ... counts the updates; NaN / NA elsewhere):
    qcbm: tv 0.05k, entropy n - 0.1k bits, total correlation 0.02k bits, marginal shift 0.01k, theta shifts
    0.1k (rx, rz, rxx); product: tv 0.03k, entropy n - 0.05k, total correlation 0 (a product prior has none),
    marginal shift 0.01k, rx shift 0.1k, no rz/rxx (NaN); bernoulli: nothing. prior_exact True at updates."""
    k = np.cumsum(updated).astype(float)
    nan = np.full(len(updated), np.nan)
    at = lambda v: np.where(updated, v, np.nan)
    if model == "qcbm":
        d = {"prior_tv": at(0.05 * k), "prior_entropy_bits": at(n - 0.1 * k),
             "prior_total_correlation_bits": at(0.02 * k), "prior_max_marginal_shift": at(0.01 * k),
             "theta_shift_rx": at(0.1 * k), "theta_shift_rz": at(0.1 * k), "theta_shift_rxx": at(0.1 * k)}
    elif model == "product":
        d = {"prior_tv": at(0.03 * k), "prior_entropy_bits": at(n - 0.05 * k),
             "prior_total_correlation_bits": at(0.0 * k), "prior_max_marginal_shift": at(0.01 * k),
             "theta_shift_rx": at(0.1 * k), "theta_shift_rz": nan, "theta_shift_rxx": nan}
    else:
        d = {c: nan for c in schema.PRIOR_DIAGNOSTIC_COLUMNS}
    d["prior_exact"] = np.asarray(updated, dtype=bool)  # the trainer writes False where no update ran
    return d


def make_run(root: str | os.PathLike, phases: Sequence[str] = ("ferrite", "bainite"), ns: Sequence[int] = (4, 6),
             train_sizes: Sequence[int] = (64, 128), seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
             effect: dict[tuple[str, int, int], float] | None = None, update_every: dict[str, int] | None = None,
             samples: int = 0, noise: float = 0.02, rng_seed: int = 0,
             models: Sequence[str] = ("bernoulli", "qcbm"),
             product_effect: dict[tuple[str, int, int], float] | None = None,
             variants: Sequence[dict[str, Any]] | None = None, diagnostics: bool = False,
             diversity: bool = False, latent_pool: int | None = None) -> list[Path]:
    """Write a grid: per (phase, n, train_size) one trial per model and seed (trained arms once per variant).

    effect[(phase, n, train_size)] = RI the QCBM should reach against the Bernoulli arm (default 0.5);
    product_effect[...] = RI of the product against the Bernoulli arm (default 0.2), so qcbm_vs_product has
    RI = (1 + effect) / (1 + product_effect) - 1. The trial ids are '<phase>-<model>-n<n>-t<train_size>-s<seed>'
    (plus '-v<i>' for trained arms when `variants` is given). variants: config overrides of the trained arms
    (qcbm and product), one set of trials per variant; a variant's keys "ri" and "ri_product" override the
    effects. diagnostics / diversity: also write the prior-diagnostic columns (`prior_diagnostics`) / the
    diversity column and summary fields (`DIVERSITY`). latent_pool: written into every config when not None.
    Returns the trial folders."""
    rng = np.random.default_rng(rng_seed)
    upd = update_every or {"ferrite": 30, "bainite": 10}
    out = []
    ep = np.arange(1, epochs + 1)
    for phase in phases:
        for n in ns:
            for ts in train_sizes:
                ri = (effect or {}).get((phase, n, ts), 0.5)
                ri_p = (product_effect or {}).get((phase, n, ts), 0.2)
                for seed in seeds:
                    fin_b = 0.2 * (1 + 0.1 * seed)
                    for model in models:
                        vs = [dict(v) for v in variants] if variants and model in TRAINED else [None]
                        for vi, var in enumerate(vs):
                            var = var or {}
                            r_q, r_p = var.pop("ri", ri), var.pop("ri_product", ri_p)
                            fin = {"bernoulli": fin_b, "qcbm": fin_b / (1 + r_q), "product": fin_b / (1 + r_p)}[model]
                            cfg = dict(BASE_CONFIG, phase=phase, model=model, seed=seed, n=n, train_size=ts,
                                       epochs=epochs, update_every=upd.get(phase, 30))
                            cfg.update(var)
                            if latent_pool is not None:
                                cfg["latent_pool"] = latent_pool
                            tid = f"{phase}-{model}-n{n}-t{ts}-s{seed}" + (f"-v{vi}" if variants and model in TRAINED
                                                                            else "")
                            cfg["trial_id"] = tid
                            curve = fin * (1 + 4 * np.exp(-ep / max(1.0, epochs / 5))) \
                                + noise * fin * rng.standard_normal(epochs)
                            extra: dict[str, Any] = {}
                            summ: dict[str, Any] = {}
                            if diversity:
                                extra["diversity"] = np.where(np.isfinite(curve), DIVERSITY[model], np.nan)
                                summ = {"diversity_real": DIVERSITY["real"], "diversity_final": DIVERSITY[model]}
                            if diagnostics:
                                every = max(1, int(cfg["update_every"]))
                                updated = (model in TRAINED) & (ep % every == 0) & (ep <= int(cfg["qcbm_epochs"]))
                                extra.update(prior_diagnostics(model, n, updated))
                            out.append(write_trial(Path(root) / tid, cfg, curve,
                                                   samples=samples if seed == seeds[0] else 0, rng=rng,
                                                   summary_overrides=summ, epoch_extra=extra))
    return out
