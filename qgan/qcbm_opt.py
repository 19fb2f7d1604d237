"""QCBM optimisers on the generator loss (Eq. 6) with G and D frozen.

    L(theta) = -(1/N) sum_m D(G(z_m)),  z_m ~ p_theta        (Eq. 6)
    theta <- theta - eta grad L                               (Eq. 7)

* ``fd``    central finite differences (Eq. 8): the 2P circuits theta +- eps e_i run as ONE batched backend
            call of N shots each, with independent draws (as on hardware) or, with ``common_random``, common
            random numbers for each +- pair on the exact simulator (the same uniforms go through the inverse
            CDF of p_{theta + eps e_i} and p_{theta - eps e_i}).
* ``spsa``  Qiskit's SPSA.minimize semantics: K iterations of two circuit calls each plus one final evaluation
            = 2K + 1 calls; a_k = a / (A + k)^0.602, c_k = c / k^0.101, k = 1..K, Delta_k in {+-1}^P;
            optional calibration (Qiskit SPSA.calibrate: 25 random directions = 50 calls, target first step 2 pi/10)
            done once per trial.
* ``exact`` the exact expectation L(theta) = -sum_x p_theta(x) f(x) over all 2**n bitstrings, differentiated by
            autograd through `qgan.quantum.probabilities` (our addition: no shot noise); one G+D pass over the
            2**n latents per update, one simulator call per step.

Step: ``plain`` is Eq. 7; ``normalized`` divides the gradient by the standard deviation of f = D(G(z)) over
the update's latents (our addition): the critic's output scale is arbitrary and drifts during training (the
spread of f went 0.26 -> 2.0 -> 0.83 between epochs 10, 30 and 50 in a small run), so a plain learning rate
means something different at every update; normalised, qcbm_lr is a step in units of that spread.

f(z) = D(G(z)) is a fixed function of the bitstring while G and D are frozen: `FrozenScorer` evaluates it once
per distinct bitstring (a full 2**n table when that is small) with batched forward passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import qgan.quantum as qq

OPTIMIZERS = ("fd", "spsa", "exact")
SPSA_ALPHA = 0.602
SPSA_GAMMA = 0.101
SPSA_STABILITY = 0.0  # Qiskit's A
SPSA_CALIBRATION_STEPS = 25
SPSA_TARGET_MAGNITUDE = 2.0 * math.pi / 10.0
# Keep a full f-table over all 2**n bitstrings up to this size (floats); above it only sampled ones are scored.
FULL_TABLE_MAX = 2**20


class FrozenScorer:
    """f(x) = D(G(bits(x))) for basis indices x, with G and D in eval mode and no autograd.

    Each distinct index is scored once (cached for the lifetime of the scorer, i.e. one QCBM update);
    forward passes run in batches of `chunk` latents on `device`. Returns float64 on CPU.
    """

    def __init__(self, generator_net: nn.Module, critic: nn.Module, n: int, device: torch.device, chunk: int = 512):
        self.g = generator_net
        self.d = critic
        self.n = int(n)
        self.device = torch.device(device)
        self.chunk = int(chunk)
        self.forward_count = 0  # latents pushed through G and D
        size = 2**self.n
        self.table = torch.full((size,), math.nan, dtype=torch.float64) if size <= FULL_TABLE_MAX else None
        self._cache: dict[int, float] = {}

    @torch.no_grad()
    def _forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = []
        for s in range(0, len(idx), self.chunk):
            z = qq.indices_to_bits(idx[s : s + self.chunk], self.n).to(self.device, torch.float32)
            out.append(self.d(self.g(z)).to(torch.float64).cpu())
        self.forward_count += len(idx)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: long (...) basis indices -> float64 (...) values f(x)."""
        idx = idx.to(torch.long).cpu()
        uniq, inv = torch.unique(idx.reshape(-1), return_inverse=True)
        if self.table is not None:
            missing = uniq[torch.isnan(self.table[uniq])]
            if len(missing):
                self.table[missing] = self._forward(missing)
            vals = self.table[uniq]
        else:
            todo = [int(u) for u in uniq.tolist() if int(u) not in self._cache]
            if todo:
                for k, v in zip(todo, self._forward(torch.tensor(todo, dtype=torch.long)).tolist()):
                    self._cache[k] = v
            vals = torch.tensor([self._cache[int(u)] for u in uniq.tolist()], dtype=torch.float64)
        return vals[inv].reshape(idx.shape)

    def all(self) -> torch.Tensor:
        """f over all 2**n bitstrings, float64 (2**n,): one batched G+D pass."""
        return self(torch.arange(2**self.n, dtype=torch.long))


def _has_probabilities(backend: Any) -> bool:
    return isinstance(backend, qq.ExactBackend)


def sampled_losses(
    ansatz: Any,
    backend: Any,
    thetas: torch.Tensor,
    shots: int,
    generator: torch.Generator,
    scorer: FrozenScorer,
    paired: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled Eq. 6 losses for a batch of parameter vectors: ONE backend call for all B circuits.

    thetas: float64 (B, P). paired: rows (2i, 2i+1) form a +- pair sharing their uniforms (common random
    numbers; exact simulator only -- other backends, like hardware, sample independently). Returns (losses (B,)
    float64, indices (B, shots) long, f values (B, shots) float64). The backend's `circuit_calls` grows by B.
    """
    b = thetas.shape[0]
    if _has_probabilities(backend):
        with torch.no_grad():
            probs = backend.probabilities(ansatz, thetas)
        rows = b // 2 if paired else b
        u = torch.rand(rows, shots, generator=generator, dtype=torch.float64)
        if paired:
            u = u.repeat_interleave(2, dim=0)
        idx = qq.inverse_cdf(probs, u.to(probs.device))
        backend.circuit_calls += b
    else:
        idx = backend.sample(ansatz, thetas, shots, generator)
    f = scorer(idx)
    return -f.mean(dim=1), idx, f


def _spread(f: torch.Tensor) -> float:
    """Standard deviation of f over all scored latents (the normalised step's scale; 1 if f is constant)."""
    sd = float(f.reshape(-1).std(unbiased=False)) if f.numel() > 1 else 0.0
    return sd if sd > 1e-12 and math.isfinite(sd) else 1.0


@dataclass
class UpdateResult:
    """theta: float64 (P,) after the update; loss: Eq. 6 estimate at theta before the update;
    final_samples: (shots,) long bitstrings measured at the new theta (SPSA's final evaluation) or None."""

    theta: torch.Tensor
    loss: float
    final_samples: torch.Tensor | None = None


def fd_update(
    ansatz: Any,
    backend: Any,
    theta: torch.Tensor,
    scorer: FrozenScorer,
    generator: torch.Generator,
    lr: float,
    eps: float,
    shots: int,
    steps: int = 1,
    common_random: bool = False,
    normalized: bool = False,
) -> UpdateResult:
    """`steps` gradient-descent steps (Eq. 7) with central differences (Eq. 8): 2P circuits per step.

    common_random: theta + eps e_i and theta - eps e_i share their uniforms (exact simulator only; default:
    independent draws, as on hardware). normalized: the step is lr * grad / sd(f) with sd(f) the standard
    deviation of f = D(G(z)) over the step's 2P * shots latents, so lr does not depend on the critic's scale."""
    th = theta.detach().to(torch.float64).cpu().clone()
    p = th.numel()
    e = torch.eye(p, dtype=torch.float64) * eps
    loss0 = math.nan
    for s in range(steps):
        thetas = torch.stack([th + e, th - e], dim=1).reshape(2 * p, p)  # rows: +e_0, -e_0, +e_1, ...
        losses, _, f = sampled_losses(ansatz, backend, thetas, shots, generator, scorer, paired=common_random)
        grad = (losses[0::2] - losses[1::2]) / (2.0 * eps)
        if s == 0:
            loss0 = float(losses.mean())
        th = th - lr * grad / (_spread(f) if normalized else 1.0)
    return UpdateResult(th, loss0)


def spsa_calibrate(
    ansatz: Any,
    backend: Any,
    theta: torch.Tensor,
    scorer: FrozenScorer,
    generator: torch.Generator,
    c: float,
    shots: int,
    target_magnitude: float = SPSA_TARGET_MAGNITUDE,
    common_random: bool = False,
    normalized: bool = False,
) -> float:
    """Qiskit SPSA.calibrate: a = target / mean_{25 directions} |L(theta + c D) - L(theta - c D)| / (2c).

    All 50 circuits run as one batched call. Returns a (target itself if the estimate is below 1e-10).
    normalized: the differences are measured in units of sd(f) (as `spsa_update` then applies them)."""
    th = theta.detach().to(torch.float64).cpu()
    deltas = 1.0 - 2.0 * torch.bernoulli(
        torch.full((SPSA_CALIBRATION_STEPS, th.numel()), 0.5, dtype=torch.float64), generator=generator
    )
    thetas = torch.stack([th + c * deltas, th - c * deltas], dim=1).reshape(-1, th.numel())
    losses, _, f = sampled_losses(ansatz, backend, thetas, shots, generator, scorer, paired=common_random)
    avg = float(((losses[0::2] - losses[1::2]) / (2.0 * c)).abs().mean()) / (_spread(f) if normalized else 1.0)
    a = target_magnitude / avg if avg > 0 else math.inf
    if not a >= 1e-10 or not math.isfinite(a):
        a = target_magnitude
    return a


def spsa_update(
    ansatz: Any,
    backend: Any,
    theta: torch.Tensor,
    scorer: FrozenScorer,
    generator: torch.Generator,
    iterations: int,
    a: float,
    c: float,
    shots: int,
    common_random: bool = False,
    normalized: bool = False,
) -> UpdateResult:
    """One SPSA cycle = Qiskit SPSA.minimize with learning rate and perturbation given: 2K + 1 circuit calls.

    a_k = a / (A + k)^0.602, c_k = c / k^0.101 (k = 1..K), g_k = (L+ - L-) / (2 c_k) Delta_k,
    theta <- theta - a_k g_k (divided by sd(f) of the iteration's latents when normalized); then L at the final
    theta (its bitstrings are returned as `final_samples`). common_random: see `fd_update`.
    """
    th = theta.detach().to(torch.float64).cpu().clone()
    p = th.numel()
    loss0 = math.nan
    half = torch.full((p,), 0.5, dtype=torch.float64)
    for k in range(1, iterations + 1):
        delta = 1.0 - 2.0 * torch.bernoulli(half, generator=generator)
        a_k = a / (SPSA_STABILITY + k) ** SPSA_ALPHA
        c_k = c / k**SPSA_GAMMA
        thetas = torch.stack([th + c_k * delta, th - c_k * delta])
        losses, _, f = sampled_losses(ansatz, backend, thetas, shots, generator, scorer, paired=common_random)
        if k == 1:
            loss0 = float(losses.mean())
        g = (losses[0] - losses[1]) / (2.0 * c_k) * delta
        th = th - a_k * g / (_spread(f) if normalized else 1.0)
    _, idx, _ = sampled_losses(ansatz, backend, th[None], shots, generator, scorer)
    return UpdateResult(th, loss0, idx[0])


def exact_loss(ansatz: Any, theta: torch.Tensor, f_all: torch.Tensor) -> torch.Tensor:
    """Exact Eq. 6 expectation L(theta) = -sum_x p_theta(x) f(x); differentiable in theta (P,). `ansatz` is the
    prior model (QCBM `Ansatz` or `ProductPrior`)."""
    probs = ansatz.probabilities(theta)[0]
    return -(probs * f_all.to(probs.device, probs.dtype)).sum()


def exact_update(
    ansatz: Any,
    backend: Any | None,
    theta: torch.Tensor,
    scorer: FrozenScorer,
    lr: float,
    steps: int = 1,
    normalized: bool = False,
) -> UpdateResult:
    """`steps` exact gradient-descent steps: grad of the exact expectation by autograd (one G+D pass over
    all 2**n latents per update; one simulator call per step, counted on `backend` when given).
    normalized: the step is divided by sd_p(f), the standard deviation of f under p_theta."""
    f_all = scorer.all()
    th = theta.detach().to(torch.float64).cpu().clone()
    loss0 = math.nan
    for s in range(steps):
        t = th.clone().requires_grad_(True)
        loss = exact_loss(ansatz, t, f_all)
        (grad,) = torch.autograd.grad(loss, t)
        if backend is not None:
            backend.circuit_calls += 1
        if s == 0:
            loss0 = float(loss.detach())
        scale = 1.0
        if normalized:
            with torch.no_grad():
                p = ansatz.probabilities(th)[0].to(torch.float64)
                mean = float((p * f_all).sum())
                var = float((p * (f_all - mean) ** 2).sum())
            scale = math.sqrt(var) if var > 1e-24 else 1.0
        th = th - lr * grad.detach() / scale
    return UpdateResult(th, loss0)
