"""The state of one trial between epochs, its one checkpoint format, and one epoch of training.

`TrialData`   the trial's images on its device: training set (uint8) and the two held-out real sets.
`TrialState`  G, D, their optimisers, the latent source, the RNG streams, the epoch records and the QCBM
              bookkeeping; `state_dict()` / `load_state_dict()` are the checkpoint format, `save` / `load` the
              one place it is written and read.
`train_epoch` one epoch (spec §5.3): WGAN-GP steps (Eq. 3), the MMD (Eq. 9) when scheduled, then a QCBM
              update (Eq. 6-8) with G and D frozen when scheduled -> the epoch's record.

Randomness: the trial seed spawns independent torch generators per purpose (init, data order, latent draws,
gradient-penalty mixing, QCBM optimiser, evaluation, theta init, latent pool). G and D are initialised first from
the init stream and the data order has its own stream, so Bernoulli and QCBM trials with the same seed start
from identical networks and see the same batches (paired comparison).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import qgan.quantum as qq
from qgan import qcbm_opt
from qgan.config import TrialConfig
from qgan.latent import BernoulliLatent, PriorLatent
from qgan.metrics import diversity, mmd
from qgan.prior import ProductBackend, ProductPrior, theta_shifts
from qgan.models import build_models, critic_step, generator_step
from qgan.results import atomic_write, empty_record

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_VERSION = 2
STREAMS = ("init", "data", "latent", "gp", "qcbm", "eval", "theta", "pool")


def make_generators(seed: int) -> dict[str, torch.Generator]:
    """Independent CPU torch generators per purpose (STREAMS), derived from the trial seed (numpy SeedSequence)."""
    out = {}
    for k, name in enumerate(STREAMS):
        s = int(np.random.SeedSequence(entropy=int(seed), spawn_key=(k,)).generate_state(1, np.uint64)[0])
        out[name] = torch.Generator().manual_seed(s & (2**63 - 1))
    return out


def update_epochs(config: TrialConfig) -> list[int]:
    """1-based epochs after whose training the prior (QCBM or product) is updated: K, 2K, ... <=
    min(qcbm_epochs, epochs); none for the fixed Bernoulli prior."""
    if config.model == "bernoulli":
        return []
    return list(range(config.update_every, min(config.qcbm_epochs, config.epochs) + 1, config.update_every))


def load_images(config: TrialConfig) -> np.ndarray:
    """uint8 (train_size + 2 eval_size, 5, 60, 60): the first train_size train, the rest are the two held-out
    real sets (MMD reference, then the second batch for the residual floor)."""
    from qgan.data import get_dataset

    count = config.train_size + 2 * config.eval_size
    ds = get_dataset(config.phase, count=count, seed=config.data_seed, source=config.data_source)
    images = np.asarray(ds.images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (5, 60, 60):
        raise ValueError(f"dataset images must be uint8 (N, 5, 60, 60), got {images.dtype} {images.shape}")
    if len(images) < count:
        raise ValueError(
            f"dataset {config.data_source!r} holds {len(images)} {config.phase} images; the trial needs "
            f"train_size + 2 * eval_size = {count}"
        )
    return images[:count]


@dataclass
class TrialData:
    """images: uint8 (N, 5, 60, 60) on the host; train: uint8 (train_size, 5, 60, 60) on the device; real_eval,
    real_floor: float64 (eval_size, 5, 60, 60) in [0, 1] on the device (MMD reference and floor batch)."""

    images: np.ndarray
    train: torch.Tensor
    real_eval: torch.Tensor
    real_floor: torch.Tensor

    @classmethod
    def load(cls, config: TrialConfig, device: torch.device) -> "TrialData":
        images = load_images(config)
        tr, ev = config.train_size, config.eval_size

        def unit(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device, torch.float64) / 255.0

        return cls(images, torch.from_numpy(np.ascontiguousarray(images[:tr])).to(device),
                   unit(images[tr : tr + ev]), unit(images[tr + ev : tr + 2 * ev]))


@dataclass
class TrialState:
    """Everything a trial carries from one epoch to the next (see the module docstring).

    epoch: epochs finished; records: their records; floor: real-vs-real MMD (None until measured);
    diversity_real: mean pairwise distance of the real evaluation set; spsa_a: the SPSA step size (None until
    calibrated); calls_before: circuit calls of earlier runs of this trial (resume). `ansatz` is the prior model
    the optimisers train: the QCBM `Ansatz`, or a `ProductPrior`.
    """

    config: TrialConfig
    device: torch.device
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    latent: Any
    gens: dict[str, torch.Generator]
    ansatz: Any = None
    backend: Any = None
    epoch: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    floor: float | None = None
    diversity_real: float | None = None
    spsa_a: float | None = None
    calls_before: int = 0
    _calls_base: int = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, config: TrialConfig, backend: Any = None) -> "TrialState":
        """Fresh state: networks from the init stream (first, identically for every model), then the latent."""
        cfg = config
        device = torch.device(cfg.device)
        gens = make_generators(cfg.seed)
        G, D = build_models(cfg.n, cfg.width, gens["init"])
        G.to(device)
        D.to(device)
        betas = (float(cfg.beta1), float(cfg.beta2))
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas)
        pool, pool_gen = cfg.latent_pool, gens["pool"]
        ansatz = bk = None
        if cfg.model == "qcbm":
            ansatz = qq.Ansatz(cfg.n, layers=cfg.layers, connectivity=cfg.connectivity)
            bk = backend if backend is not None else qq.make_backend(cfg.backend)
            theta0 = {"uniform": ansatz.uniform_start,
                      "random": lambda: ansatz.random_start(gens["theta"]),
                      "perturbed": lambda: ansatz.perturbed_start(gens["theta"], cfg.theta_init_scale)}[cfg.theta_init]()
            # hardware-like backends feed G the bitstrings of their last run (a pool of qcbm_samples shots)
            mode = "pool" if pool or not bk.fresh_latents else "fresh"
            latent: Any = PriorLatent(ansatz, bk, theta0, mode=mode, pool_size=pool or cfg.qcbm_samples,
                                      pool_generator=pool_gen, from_backend=not bk.fresh_latents)
        elif cfg.model == "product":
            ansatz, bk = ProductPrior(cfg.n), ProductBackend()
            latent = PriorLatent(ansatz, bk, ansatz.uniform_start(), mode="pool" if pool else "fresh",
                                 pool_size=pool or 1, pool_generator=pool_gen)
        else:
            latent = BernoulliLatent(cfg.n, 0.5, pool_size=pool, pool_generator=pool_gen)
        # the backend object is never reset (a shared gateway client keeps its own count): count from here
        state = cls(cfg, device, G, D, opt_g, opt_d, latent, gens, ansatz, bk,
                    spsa_a=None if cfg.spsa_calibrate else cfg.spsa_a)
        state._calls_base = state._raw_calls()
        return state

    def start(self, data: TrialData) -> None:
        """Before the first epoch of this run: the initial latent pool (a fresh trial), the floor MMD and the
        real set's diversity."""
        if self.epoch == 0:
            self.latent.start()
        if self.floor is None:
            self.floor = mmd(data.real_eval, data.real_floor, kernel=self.config.mmd_kernel,
                             unbiased=self.config.mmd_estimator == "unbiased")
        if self.diversity_real is None:
            self.diversity_real = diversity(data.real_eval)

    # ------------------------------------------------------------------ bookkeeping
    def _raw_calls(self) -> int:
        bk = int(self.backend.circuit_calls) if self.backend is not None else 0
        return bk + int(self.latent.circuit_runs)

    @property
    def circuit_calls(self) -> int:
        """Circuit calls of this trial: earlier runs plus what the backend (optimiser, pool refills) and the
        latent source (fresh draws) counted since this run started."""
        return self.calls_before + self._raw_calls() - self._calls_base

    @property
    def latent_pool_size(self) -> int:
        """Bitstrings in the latent pool G is fed from (0: fresh latents every epoch)."""
        return self.latent.pool_size if self.latent.mode == "pool" else 0

    @property
    def theta(self) -> torch.Tensor | None:
        """Current prior parameters float64 (P,) (None for Bernoulli)."""
        return None if self.latent.theta is None else self.latent.theta.clone()

    # ------------------------------------------------------------------ the checkpoint format
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "records": self.records,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {k: g.get_state() for k, g in self.gens.items()},
            "latent": self.latent.state_dict(),
            "circuit_calls": self.circuit_calls,
            "spsa_a": self.spsa_a,
            "mmd_floor": self.floor,
            "diversity_real": self.diversity_real,
        }

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        """Adopt a checkpoint; ValueError if it belongs to another trial (any setting but `epochs`, or seed)."""
        saved = TrialConfig.from_dict(state["config"])
        a, b = saved.setting(), self.config.setting()
        a.pop("epochs"), b.pop("epochs")
        diff = sorted(k for k in a if a[k] != b[k]) + (["seed"] if saved.seed != self.config.seed else [])
        if diff:
            raise ValueError(f"checkpoint in {where} belongs to a different trial (differs in: {', '.join(diff)})")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for k, g in self.gens.items():
            g.set_state(state["rng"][k])
        self.latent.load_state_dict(state["latent"])
        self.calls_before = int(state["circuit_calls"])
        self._calls_base = self._raw_calls()
        self.spsa_a = state["spsa_a"]
        self.floor = float(state["mmd_floor"])
        self.diversity_real = state.get("diversity_real")
        self.records = list(state["records"])
        self.epoch = int(state["epoch"])

    def save(self, checkpoint_dir: str) -> str:
        """Write the checkpoint atomically to checkpoint_dir/CHECKPOINT_FILE; returns checkpoint_dir."""
        state = self.state_dict()
        atomic_write(os.path.join(checkpoint_dir, CHECKPOINT_FILE), lambda tmp: torch.save(state, tmp))
        return checkpoint_dir

    def load(self, checkpoint_dir: str) -> bool:
        """Resume from checkpoint_dir if it holds a checkpoint; False when there is none."""
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        if not os.path.exists(path):
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), where=checkpoint_dir)
        return True


# ---------------------------------------------------------------------------------------------- one epoch
def train_epoch(state: TrialState, data: TrialData) -> tuple[dict[str, Any], str | None]:
    """Run epoch state.epoch + 1 -> (its record, failure reason or None); advances state.epoch.

    The record has every EPOCH_SCHEMA column but `seconds` (the caller times the epoch and keeps the record).
    A failure (a non-finite loss, MMD or QCBM result) ends the epoch where it happened."""
    state.epoch += 1
    rec = empty_record(state.epoch)
    reason = _epoch_steps(state, data, rec)
    rec["circuit_calls"] = state.circuit_calls
    return rec, reason


def _epoch_steps(state: TrialState, data: TrialData, rec: dict[str, Any]) -> str | None:
    cfg, dev, gens, epoch = state.config, state.device, state.gens, state.epoch
    B = cfg.batch_size
    steps = cfg.train_size // B  # drop_last: every critic step sees a full batch
    g_steps = steps // cfg.n_critic
    G, D = state.G, state.D
    # -------- WGAN-GP steps (Eq. 3)
    G.train()
    D.train()
    perm = torch.randperm(cfg.train_size, generator=gens["data"])[: steps * B].to(dev)
    z_all = state.latent.sample(steps * B + g_steps * B, gens["latent"]).to(dev)
    eps_all = torch.rand(steps, B, generator=gens["gp"]).to(dev)
    acc = torch.zeros(4, dtype=torch.float64, device=dev)  # loss_d, wasserstein, gp, loss_g
    gi = 0
    for s in range(steps):
        real = data.train[perm[s * B : (s + 1) * B]].to(torch.float32).div_(127.5).sub_(1.0)
        with torch.no_grad():
            fake = G(z_all[s * B : (s + 1) * B])
        loss_d, w, gp = critic_step(D, state.opt_d, real, fake, eps_all[s], cfg.gp_lambda)
        acc[0] += loss_d
        acc[1] += w
        acc[2] += gp
        if (s + 1) % cfg.n_critic == 0:
            acc[3] += generator_step(G, D, state.opt_g, z_all[(steps + gi) * B : (steps + gi + 1) * B])
            gi += 1
    acc_c = acc.cpu()
    losses = dict(loss_d=float(acc_c[0]) / steps, loss_g=float(acc_c[3]) / max(g_steps, 1),
                  wasserstein=float(acc_c[1]) / steps, gp=float(acc_c[2]) / steps)
    rec.update(losses)
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        return f"non-finite {bad[0]} ({rec[bad[0]]}) at epoch {epoch}"
    # -------- MMD (Eq. 9) against the fixed held-out real set
    if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
        fake_eval = (generate(G, state.latent, cfg.eval_size, gens["eval"], dev).to(torch.float64) + 1.0) / 2.0
        rec["mmd"] = mmd(data.real_eval, fake_eval, kernel=cfg.mmd_kernel, unbiased=cfg.mmd_estimator == "unbiased")
        rec["diversity"] = diversity(fake_eval)
        if not math.isfinite(rec["mmd"]):
            return f"non-finite mmd ({rec['mmd']}) at epoch {epoch}"
    # -------- QCBM update (Eq. 6-8), G and D frozen
    if epoch in update_epochs(cfg):
        res = qcbm_update(state)
        rec["qcbm_updated"] = True
        rec["qcbm_loss"] = res.loss
        if not math.isfinite(res.loss):
            return f"non-finite qcbm_loss ({res.loss}) at epoch {epoch}"
        if not bool(torch.isfinite(res.theta).all()):
            return f"non-finite QCBM parameters at epoch {epoch}"
        latent = state.latent
        latent.set_theta(res.theta, res.final_samples if latent.mode == "pool" else None)
        rec.update(latent.diagnostics())
        if cfg.model == "qcbm":
            rec.update(theta_shifts(state.ansatz, latent.theta, latent.theta0))
    return None


@torch.no_grad()
def generate(G: torch.nn.Module, latent: Any, count: int, generator: torch.Generator, device: torch.device,
             chunk: int = 256) -> torch.Tensor:
    """count images (count, 5, 60, 60) in [-1, 1] from G in eval mode (restores train mode after)."""
    was_training = G.training
    G.eval()
    z = latent.sample(count, generator).to(device)
    out = torch.cat([G(z[i : i + chunk]) for i in range(0, count, chunk)])
    G.train(was_training)
    return out


def qcbm_update(state: TrialState) -> qcbm_opt.UpdateResult:
    """One scheduled QCBM update with G and D in eval mode and no gradients on their parameters."""
    cfg, G, D = state.config, state.G, state.D
    ansatz, bk, gen = state.ansatz, state.backend, state.gens["qcbm"]
    g_mode, d_mode = G.training, D.training
    G.eval()
    D.eval()
    G.requires_grad_(False)
    D.requires_grad_(False)
    try:
        scorer = qcbm_opt.FrozenScorer(G, D, cfg.n, state.device)
        theta = state.latent.theta
        crn, normalized = cfg.fd_common_random, cfg.qcbm_step == "normalized"
        if cfg.qcbm_optimizer == "fd":
            return qcbm_opt.fd_update(ansatz, bk, theta, scorer, gen, cfg.qcbm_lr, cfg.fd_eps, cfg.qcbm_samples,
                                      cfg.qcbm_steps, common_random=crn, normalized=normalized)
        if cfg.qcbm_optimizer == "spsa":
            if state.spsa_a is None:
                state.spsa_a = qcbm_opt.spsa_calibrate(ansatz, bk, theta, scorer, gen, cfg.spsa_c, cfg.qcbm_samples,
                                                       common_random=crn, normalized=normalized)
            return qcbm_opt.spsa_update(ansatz, bk, theta, scorer, gen, cfg.spsa_iterations, state.spsa_a,
                                        cfg.spsa_c, cfg.qcbm_samples, common_random=crn, normalized=normalized)
        return qcbm_opt.exact_update(ansatz, bk, theta, scorer, cfg.qcbm_lr, cfg.qcbm_steps, normalized=normalized)
    finally:
        G.requires_grad_(True)
        D.requires_grad_(True)
        G.train(g_mode)
        D.train(d_mode)
