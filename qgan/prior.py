"""The classical trained-prior control and the diagnostics of any latent prior p over {0,1}^n.

`ProductPrior(n)`: n independent bits, bit q = 1 with probability sigmoid(l_q); its parameters are the n
logits l (l = 0 is Bernoulli(0.5)^n). It has the interface of the QCBM `Ansatz` that the QCBM optimisers use
(`num_params`, `check_thetas`, `probabilities`, `uniform_start`, `perturbed_start`), so the `product` arm is
trained on the same loss (Eq. 6) with the same optimiser, schedule and samples as the `qcbm` arm: it separates
"a trained prior" from "an entangled prior". `ProductBackend` samples it (exactly; there is no circuit).

`prior_diagnostics(p)`: total variation from uniform, entropy, total correlation and marginals of p (exact), and
`sample_diagnostics(idx, n)` the same plug-in estimates from samples where 2**n is too large.
"""
from __future__ import annotations

import math

import torch

from qgan.quantum.ansatz import as_param_batch
from qgan.quantum.backends import ExactBackend
from qgan.quantum.sampling import indices_to_bits

#: Largest n whose 2**n probability table the diagnostics compute exactly (8 MiB of float64).
EXACT_DIAGNOSTICS_MAX_QUBITS = 20


class ProductPrior:
    """n independent Bernoulli(sigmoid(l_q)) bits; parameters: logits l, float64 (n,)."""

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"number of bits n must be a positive integer, got {n!r}")
        self.n = n
        self.num_params = n

    def check_thetas(self, thetas: torch.Tensor) -> torch.Tensor:
        """thetas as (B, n); ValueError on a wrong shape."""
        return as_param_batch(thetas, self.n, f"logits must have shape (n,) or (B, n) with n = {self.n}")

    def uniform_start(self) -> torch.Tensor:
        """Logits 0: exactly Bernoulli(0.5)^n."""
        return torch.zeros(self.n, dtype=torch.float64)

    def perturbed_start(self, generator: torch.Generator, scale: float) -> torch.Tensor:
        """Logits N(0, scale**2) (the same perturbation as the QCBM start, in logit units)."""
        noise = torch.randn(self.n, generator=generator, dtype=torch.float64, device=generator.device)
        return float(scale) * noise.cpu()

    def marginals(self, theta: torch.Tensor) -> torch.Tensor:
        """P(x_q = 1) = sigmoid(l_q), same shape as theta."""
        return torch.sigmoid(theta)

    def probabilities(self, thetas: torch.Tensor) -> torch.Tensor:
        """(B, 2**n) probabilities prod_q p_q^x_q (1 - p_q)^(1 - x_q); differentiable in the logits."""
        thetas = self.check_thetas(thetas)
        bits = indices_to_bits(torch.arange(2**self.n, device=thetas.device), self.n).to(thetas.dtype)
        log1 = torch.nn.functional.logsigmoid(thetas)      # log p_q
        log0 = torch.nn.functional.logsigmoid(-thetas)     # log (1 - p_q)
        return torch.exp(log0.sum(1, keepdim=True) + (log1 - log0) @ bits.T)

    def __repr__(self) -> str:
        return f"ProductPrior(n={self.n})"


class ProductBackend(ExactBackend):
    """Exact sampling of a `ProductPrior` (float64, no circuit); `circuit_calls` counts prior evaluations so that
    the product arm's sample budget reads like the QCBM's."""

    name = "product"

    def __init__(self) -> None:
        super().__init__(dtype=torch.float64)

    def _sample(self, ansatz, thetas: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
        probs = self.probabilities(ansatz, thetas)
        from qgan.quantum.sampling import sample_indices

        return sample_indices(probs, shots, generator)


# ---------------------------------------------------------------------------------------------- diagnostics
def _binary_entropy_bits(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(0.0, 1.0)
    q = 1.0 - p
    return -(torch.where(p > 0, p * torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p))
             + torch.where(q > 0, q * torch.log2(q.clamp_min(1e-300)), torch.zeros_like(q)))


def prior_diagnostics(probs: torch.Tensor, n: int) -> dict[str, float]:
    """Exact diagnostics of p (2**n,) float: TV from uniform, entropy (bits), total correlation (bits) = sum of
    the marginal entropies minus the joint entropy (0 for a product of independent bits), and the largest
    |P(x_q = 1) - 1/2| over bits."""
    p = probs.detach().to(torch.float64).reshape(-1)
    p = p / p.sum()
    tv = 0.5 * float((p - 2.0**-n).abs().sum())
    h = float(-(torch.where(p > 0, p * torch.log2(p.clamp_min(1e-300)), torch.zeros_like(p))).sum())
    bits = indices_to_bits(torch.arange(2**n, device=p.device), n).to(torch.float64)
    marg = p @ bits
    h_marg = float(_binary_entropy_bits(marg).sum())
    return {"prior_tv": tv, "prior_entropy_bits": h, "prior_total_correlation_bits": max(0.0, h_marg - h),
            "prior_max_marginal_shift": float((marg - 0.5).abs().max())}


def sample_diagnostics(idx: torch.Tensor, n: int) -> dict[str, float]:
    """The same quantities as plug-in estimates from sampled basis indices (S,) (biased for S << 2**n: the
    entropy low, TV and total correlation high); for n beyond EXACT_DIAGNOSTICS_MAX_QUBITS."""
    idx = idx.reshape(-1).to(torch.long).cpu()
    s = len(idx)
    uniq, counts = torch.unique(idx, return_counts=True)
    f = counts.to(torch.float64) / s
    h = float(-(f * torch.log2(f)).sum())
    # TV from uniform: seen states contribute |f - 2^-n|, unseen ones 2^-n each
    tv = 0.5 * (float((f - 2.0**-n).abs().sum()) + (2.0**n - len(uniq)) * 2.0**-n)
    marg = indices_to_bits(idx, n).to(torch.float64).mean(0)
    h_marg = float(_binary_entropy_bits(marg).sum())
    return {"prior_tv": tv, "prior_entropy_bits": h, "prior_total_correlation_bits": max(0.0, h_marg - h),
            "prior_max_marginal_shift": float((marg - 0.5).abs().max())}


def theta_shifts(ansatz, theta: torch.Tensor, theta0: torch.Tensor) -> dict[str, float]:
    """Largest |theta - theta0| (rad) within each angle group of a QCBM ansatz: theta_shift_rx/_rz/_rxx."""
    d = (theta.detach().to(torch.float64) - theta0.detach().to(torch.float64)).abs()
    return {f"theta_shift_{k}": float(d[ix].max()) if len(ix) else math.nan
            for k, ix in ansatz.angle_groups().items()}
