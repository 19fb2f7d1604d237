"""Latent sources for the generator: Bernoulli(p)^n (classical baseline) and a QCBM (Eq. 4-5).

A source returns float32 tensors (count, n) of bits {0, 1}; bit q of a QCBM basis index is latent component q.
Every draw takes a `torch.Generator` so that runs are reproducible and the streams of different purposes
(training latents, evaluation latents) stay separate.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

import qgan.quantum as qq


class LatentSource(Protocol):
    n: int

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:  # (count, n) float32
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


class BernoulliLatent:
    """Independent Bernoulli(p) bits: z_q = 1 with probability p (p = 0.5 is the paper's baseline)."""

    def __init__(self, n: int, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Bernoulli p must lie in [0, 1], got {p}")
        self.n = int(n)
        self.p = float(p)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, n) float32 bits from uniforms u < p drawn with `generator` (on its device)."""
        u = torch.rand(count, self.n, generator=generator, device=generator.device)
        return (u < self.p).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class QCBMLatent:
    """Bitstrings sampled from the current QCBM circuit p_theta (Eq. 5) through a `qgan.quantum.Backend`.

    mode ``fresh``: every `sample` call runs the circuit at the current theta once (one backend call,
    `count` shots) -- what a simulator does between updates.
    mode ``pool``: `sample` resamples (uniformly, with replacement, from `generator`) the bitstrings of the last
    circuit run at the current theta, set by `set_theta(theta, samples)`; used for remote hardware, where the
    paper reused the final SPSA execution's bitstrings between cycles. `set_theta` without samples runs the
    circuit once with `pool_shots` shots (drawn from `pool_generator`).
    theta: float64 (P,) kept on CPU.
    """

    def __init__(
        self,
        ansatz: Any,
        backend: Any,
        theta: torch.Tensor,
        mode: str = "fresh",
        pool_shots: int = 1000,
        pool_generator: torch.Generator | None = None,
    ) -> None:
        if mode not in ("fresh", "pool"):
            raise ValueError(f"QCBM latent mode must be 'fresh' or 'pool', got {mode!r}")
        self.ansatz = ansatz
        self.backend = backend
        self.n = int(ansatz.n)
        self.mode = mode
        self.pool_shots = int(pool_shots)
        self.pool_generator = pool_generator
        self.theta = theta.detach().to(torch.float64).cpu().clone()
        self.pool: torch.Tensor | None = None

    def set_theta(self, theta: torch.Tensor, samples: torch.Tensor | None = None) -> None:
        """Adopt new parameters; in pool mode refill the pool (from `samples` (S,) long if given)."""
        self.theta = theta.detach().to(torch.float64).cpu().clone()
        if self.mode == "pool":
            if samples is None:
                if self.pool_generator is None:
                    raise ValueError("pool mode needs a pool_generator to refill the pool")
                samples = self.backend.sample(self.ansatz, self.theta[None], self.pool_shots, self.pool_generator)[0]
            self.pool = samples.detach().reshape(-1).to(torch.long).cpu().clone()
        else:
            self.pool = None

    def sample_indices(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count,) long basis indices."""
        if self.mode == "fresh":
            return self.backend.sample(self.ansatz, self.theta[None], int(count), generator)[0].to(torch.long).cpu()
        if self.pool is None:
            self.set_theta(self.theta)
        pick = torch.randint(len(self.pool), (int(count),), generator=generator, device=generator.device).cpu()
        return self.pool[pick]

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, n) float32 bits."""
        return qq.indices_to_bits(self.sample_indices(count, generator), self.n).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"theta": self.theta.clone(), "pool": None if self.pool is None else self.pool.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.theta = state["theta"].to(torch.float64).cpu().clone()
        self.pool = None if state.get("pool") is None else state["pool"].to(torch.long).cpu().clone()
