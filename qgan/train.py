"""One trial end to end: TrialConfig -> data -> state -> epochs -> result files (docs/interfaces.md).

Schedule (spec §5.3, 1-based epochs): epoch e runs its WGAN-GP steps over the training set (Eq. 3, n_critic
critic steps per generator step), then the MMD (Eq. 9) when e % eval_every == 0 (and at the last epoch), then,
for the QCBM model, a QCBM update when e % update_every == 0 and e <= qcbm_epochs, with G and D frozen. This is
the spec's "update at the start of (0-based) epoch e, after e epochs of classical training": updates after 30,
60, 90 epochs for update_every 30 and qcbm_epochs 100. The record of epoch e carries that update.

The pieces: `qgan.config` (TrialConfig), `qgan.trial_state` (TrialState, its checkpoint, train_epoch),
`qgan.results` (the result files), `qgan.samples` (samples.npz / samples.png).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from qgan import results
from qgan.config import EXACT_MAX_QUBITS, THETA_INITS, TrialConfig  # noqa: F401
from qgan.models import to_uint8
from qgan.results import BOOKKEEPING, MODELS, PHASES, QCBM_ONLY  # noqa: F401  (re-exported)
from qgan.samples import save_samples_npz, save_samples_png
from qgan.trial_state import (CHECKPOINT_FILE, TrialData, TrialState, generate, load_images,  # noqa: F401
                              make_generators, train_epoch, update_epochs)

RECORD_COLUMNS = results.EPOCH_COLUMNS


@dataclass
class TrialResult:
    """records: one dict per finished epoch (columns results.EPOCH_COLUMNS); summary: the summary.json dict."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    config: TrialConfig | None = None
    theta: torch.Tensor | None = field(default=None, repr=False)


class TrialFiles:
    """The result files of one trial in `out` (None: write nothing): config.json, epochs.parquet, summary.json,
    samples.npz / samples.png."""

    def __init__(self, out: str | None, trial_id: str | None):
        self.out = out
        self.trial_id = trial_id
        if out is not None:
            os.makedirs(out, exist_ok=True)

    def start(self, state: TrialState) -> None:
        if self.out is not None:
            results.write_json(os.path.join(self.out, "config.json"),
                               {**state.config.to_dict(), results.TRIAL_ID: self.trial_id})
            self.progress(state, "running")

    @staticmethod
    def summary(state: TrialState, status: str, reason: str | None = None) -> dict[str, Any]:
        return results.summarize(state.records, status, reason, state.floor, state.circuit_calls, state.theta,
                                 state.diversity_real, state.latent_pool_size)

    def progress(self, state: TrialState, status: str, reason: str | None = None) -> dict[str, Any]:
        """Write epochs.parquet and summary.json as they stand; returns the summary."""
        summary = self.summary(state, status, reason)
        if self.out is not None:
            results.write_epochs(os.path.join(self.out, "epochs.parquet"), state.records)
            results.write_json(os.path.join(self.out, "summary.json"), summary)
        return summary

    def finish(self, state: TrialState, data: TrialData, status: str, reason: str | None) -> dict[str, Any]:
        """The final files; summary.json last, so that a completed summary means every file is there."""
        summary = self.summary(state, status, reason)
        if self.out is not None:
            results.write_epochs(os.path.join(self.out, "epochs.parquet"), state.records)
            if status == "completed":
                self._samples(state, data)
            results.write_json(os.path.join(self.out, "summary.json"), summary)
        return summary

    def _samples(self, state: TrialState, data: TrialData) -> None:
        cfg = state.config
        if cfg.n_samples_saved <= 0:
            return
        k = min(cfg.n_samples_saved, cfg.eval_size)
        gen = torch.Generator().manual_seed(cfg.seed)
        fake = to_uint8(generate(state.G, state.latent, k, gen, state.device)).numpy()
        real = data.images[cfg.train_size : cfg.train_size + k]
        save_samples_npz(os.path.join(self.out, "samples.npz"), real, fake)
        save_samples_png(os.path.join(self.out, "samples.png"), real[:4], fake[:4],
                         title=f"{cfg.phase} {cfg.model} n={cfg.n} seed={cfg.seed}: real (top) vs generated")


def run_trial(
    config: TrialConfig | dict[str, Any],
    on_epoch: Callable[[dict[str, Any], str | None], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    backend: Any | None = None,
    *,
    progress: bool = False,
    trial_id: str | None = None,
) -> TrialResult:
    """Run one trial; see the module docstring for the schedule and docs/interfaces.md for the contract.

    on_epoch(record, checkpoint_dir): called after every epoch (checkpoint_dir: the directory holding this
    epoch's checkpoint, or None). checkpoint: directory; resumes from its checkpoint if it holds one, writes one
    every config.checkpoint_every epochs and at the end (atomically). out_dir: writes the result files.
    backend: a qgan.quantum.Backend overriding config.backend. trial_id: the id config.json records (the
    sweep passes it; default: the name of out_dir). A NaN/inf loss ends the trial with status "failed"
    (no exception); an invalid config raises ValueError; a crash records status "failed" and re-raises.
    """
    cfg = _checked(config)
    ckdir = os.fspath(checkpoint) if checkpoint is not None else None
    out = os.fspath(out_dir) if out_dir is not None else None
    files = TrialFiles(out, trial_id or (os.path.basename(os.path.abspath(out)) if out else None))

    data = TrialData.load(cfg, torch.device(cfg.device))          # load
    state = TrialState.build(cfg, backend)                         # build state
    if ckdir is not None:                                          # resume
        state.load(ckdir)
    state.start(data)
    files.start(state)

    status, reason, in_callback = "completed", None, False
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.epochs, initial=state.epoch, disable=not progress, unit="epoch",
               desc=f"{cfg.model} {cfg.phase} n={cfg.n} seed={cfg.seed}")
    try:
        while state.epoch < cfg.epochs and status == "completed":    # epochs
            t0 = time.perf_counter()
            rec, reason = train_epoch(state, data)
            status = "failed" if reason else "completed"
            rec["seconds"] = time.perf_counter() - t0
            state.records.append(rec)
            bar.update(1)
            if math.isfinite(rec["mmd"]):
                bar.set_postfix(mmd=f"{rec['mmd']:.4g}")
            ck = None
            if ckdir is not None and not reason and (state.epoch % cfg.checkpoint_every == 0
                                                     or state.epoch == cfg.epochs):
                ck = state.save(ckdir)
                files.progress(state, "running")
            if on_epoch is not None:
                in_callback = True
                on_epoch(dict(rec), ck)  # exceptions from the caller's callback propagate untouched
                in_callback = False
    except Exception as exc:  # a crash inside the trial: record it, then re-raise
        if not in_callback:
            files.progress(state, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()

    summary = files.finish(state, data, status, reason)           # summarise
    return TrialResult(records=state.records, summary=summary, config=cfg, theta=state.theta)


def _checked(config: TrialConfig | dict[str, Any]) -> TrialConfig:
    cfg = TrialConfig.from_dict(config) if isinstance(config, dict) else config
    cfg.validate()
    if torch.device(cfg.device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} requested but CUDA is not available")
    return cfg
