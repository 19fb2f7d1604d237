"""Latent sources for the generator (Eq. 4-5): fixed Bernoulli(p)^n, and a trained prior p_theta (the QCBM
circuit, or the classical `ProductPrior` control).

A source returns float32 tensors (count, n) of bits {0, 1}; bit q of a basis index is latent component q. All
sources draw the same uniforms for the same call, u float64 (count, n) from the `torch.Generator` passed in, and
map them through the same bitwise inverse CDF (`qgan.quantum.chain_rule_bits`: bit q = u_q < P(x_q = 1 | x_<q)).
So a Bernoulli(0.5) source, a product prior at logits 0 and a QCBM at the exactly uniform start give identical
latents from identical generators: the arms of one seed are exactly paired, and a QCBM with learning rate 0 from
the uniform start reproduces the Bernoulli trial (the null arm).

Pools (`pool_size` > 0): `sample` resamples, with replacement, a fixed set of bitstrings: pick = floor(u_0 * S)
with the same uniforms. A QCBM on remote hardware (or per-shot noisy emulation) always uses one: the bitstrings
of its last circuit run, as in the paper's QPU runs. Any arm can be given a pool of the same size
(`TrialConfig.latent_pool`) so that pooled and fresh latents are never compared with each other by accident.
"""
from __future__ import annotations

from typing import Any

import torch

import qgan.quantum as qq
from qgan.prior import EXACT_DIAGNOSTICS_MAX_QUBITS, prior_diagnostics, sample_diagnostics


def uniforms(count: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """The uniforms every source draws for `count` latents: float64 (count, n) in [0, 1) on CPU."""
    return torch.rand(int(count), int(n), generator=generator, dtype=torch.float64, device=generator.device).cpu()


def _pick(pool: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Rows of pool (S, n) chosen by floor(u[:, 0] * S) (with replacement)."""
    k = (u[:, 0] * len(pool)).long().clamp_(max=len(pool) - 1)
    return pool[k]


class BernoulliLatent:
    """Independent Bernoulli(p) bits: z_q = 1 where u_q < p (p = 0.5 is the paper's baseline).

    pool_size > 0: a pool of that many bitstrings drawn once at `start()` from `pool_generator` and resampled for
    the whole trial (the pool-parity control for a QCBM that reuses hardware shots)."""

    theta = None
    circuit_runs = 0

    def __init__(self, n: int, p: float = 0.5, pool_size: int = 0,
                 pool_generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Bernoulli p must lie in [0, 1], got {p}")
        self.n = int(n)
        self.p = float(p)
        self.pool_size = int(pool_size)
        self.pool_generator = pool_generator
        self.pool: torch.Tensor | None = None

    @property
    def mode(self) -> str:
        return "pool" if self.pool_size > 0 else "fresh"

    def start(self) -> None:
        """Before the first epoch of a fresh trial: draw the pool (pool mode)."""
        if self.pool_size > 0:
            self.pool = (uniforms(self.pool_size, self.n, self.pool_generator) < self.p).to(torch.float32)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, n) float32 bits from `count` rows of uniforms drawn with `generator`."""
        u = uniforms(count, self.n, generator)
        if self.pool is not None:
            return _pick(self.pool, u)
        return (u < self.p).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"pool": None if self.pool is None else self.pool.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool = None if state.get("pool") is None else state["pool"].clone()


class PriorLatent:
    """Bitstrings from a trained prior p_theta: a QCBM `Ansatz` run on a `qgan.quantum.Backend`, or a
    `ProductPrior` on a `ProductBackend`.

    mode ``fresh``: every `sample` call draws from p_theta (computed exactly in float64 once per theta) through
    the bitwise inverse CDF; each call counts as one circuit run (`circuit_runs`).
    mode ``pool``: `sample` resamples the pool, refilled by `set_theta` after every update: from the samples
    the optimiser measured at the new theta when their number is `pool_size` (SPSA's final evaluation), else by
    one backend run of `pool_size` shots (`from_backend`: hardware, where p_theta cannot be computed) or by
    `pool_size` exact draws; all from `pool_generator`.
    theta: float64 (P,) kept on CPU; theta0: the trial's starting parameters (for the theta shifts).
    """

    def __init__(self, model: Any, backend: Any, theta: torch.Tensor, mode: str = "fresh", pool_size: int = 1000,
                 pool_generator: torch.Generator | None = None, from_backend: bool = False) -> None:
        if mode not in ("fresh", "pool"):
            raise ValueError(f"latent mode must be 'fresh' or 'pool', got {mode!r}")
        if mode == "pool" and pool_size < 1:
            raise ValueError(f"a latent pool needs pool_size >= 1, got {pool_size}")
        self.model = model
        self.backend = backend
        self.n = int(model.n)
        self.mode = mode
        self.pool_size = int(pool_size)
        self.pool_generator = pool_generator
        self.from_backend = bool(from_backend)
        self.theta = theta.detach().to(torch.float64).cpu().clone()
        self.theta0 = self.theta.clone()
        self.pool: torch.Tensor | None = None  # long (S,) basis indices
        self.circuit_runs = 0
        self._probs: torch.Tensor | None = None

    # ------------------------------------------------------------------ the distribution
    def probabilities(self) -> torch.Tensor:
        """p_theta float64 (2**n,) (exact, cached until theta changes)."""
        if self._probs is None:
            with torch.no_grad():
                self._probs = self.model.probabilities(self.theta[None])[0].to(torch.float64).cpu()
        return self._probs

    def start(self) -> None:
        """Before the first epoch of a fresh trial: the initial pool (one circuit run at theta0 in pool mode)."""
        if self.mode == "pool":
            self.set_theta(self.theta)

    def set_theta(self, theta: torch.Tensor, samples: torch.Tensor | None = None) -> None:
        """Adopt new parameters; in pool mode refill the pool (from `samples` (S,) long if given and S = pool_size)."""
        self.theta = theta.detach().to(torch.float64).cpu().clone()
        self._probs = None
        if self.mode != "pool":
            self.pool = None
            return
        if samples is None or samples.numel() != self.pool_size:
            if self.pool_generator is None:
                raise ValueError("pool mode needs a pool_generator to refill the pool")
            if self.from_backend:
                samples = self.backend.sample(self.model, self.theta[None], self.pool_size, self.pool_generator)[0]
            else:
                u = uniforms(self.pool_size, self.n, self.pool_generator)
                samples = qq.bits_to_indices(qq.chain_rule_bits(self.probabilities(), u))
                self.circuit_runs += 1
        self.pool = samples.detach().reshape(-1).to(torch.long).cpu().clone()

    # ------------------------------------------------------------------ drawing
    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, n) float32 bits from `count` rows of uniforms drawn with `generator`."""
        u = uniforms(count, self.n, generator)
        if self.mode == "pool":
            if self.pool is None:
                self.set_theta(self.theta)
            return qq.indices_to_bits(_pick(self.pool, u), self.n)
        self.circuit_runs += 1
        return qq.chain_rule_bits(self.probabilities(), u)

    def diagnostics(self) -> dict[str, Any]:
        """The prior columns of an update epoch: TV, entropy, total correlation, max marginal shift; exact from
        p_theta in fresh mode up to EXACT_DIAGNOSTICS_MAX_QUBITS (`prior_exact` True), else estimated from the
        pool, i.e. from what G actually sees (`prior_exact` False)."""
        if self.mode == "fresh" and self.n <= EXACT_DIAGNOSTICS_MAX_QUBITS:
            return {**prior_diagnostics(self.probabilities(), self.n), "prior_exact": True}
        if self.pool is None:
            self.set_theta(self.theta)
        return {**sample_diagnostics(self.pool, self.n), "prior_exact": False}

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"theta": self.theta.clone(), "theta0": self.theta0.clone(),
                "pool": None if self.pool is None else self.pool.clone(), "circuit_runs": self.circuit_runs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.theta = state["theta"].to(torch.float64).cpu().clone()
        self.theta0 = state.get("theta0", self.theta).to(torch.float64).cpu().clone()
        self.pool = None if state.get("pool") is None else state["pool"].to(torch.long).cpu().clone()
        self.circuit_runs = int(state.get("circuit_runs", 0))
        self._probs = None


#: The QCBM latent (kept under its old name for callers that build one directly).
QCBMLatent = PriorLatent
