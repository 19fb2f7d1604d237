"""Sampling basis states from Born probabilities by inverse CDF (no 2**24 category cap, unlike multinomial)."""

from __future__ import annotations

import torch


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Basis indices (B, S) long for probabilities (B, K) (or (K,)) and uniforms (B, S) (or (S,)) in [0, 1).

    Index x is returned for u in [F(x-1), F(x)) with F the cumulative sum taken in float64 and normalised by
    its last entry, so rows need not sum to exactly 1 and K may exceed 2**24 (float64 resolves 2**-52).
    Categories with zero probability are never returned. The same uniforms give the same indices for nearby
    probabilities (common random numbers for finite differences).
    """
    if probs.dim() == 1:
        probs = probs.unsqueeze(0)
    if uniforms.dim() == 1:
        uniforms = uniforms.unsqueeze(0)
    if probs.dim() != 2 or uniforms.dim() != 2 or uniforms.shape[0] != probs.shape[0]:
        raise ValueError(
            f"probs must be (B, K) and uniforms (B, S) with the same B, got {tuple(probs.shape)} and "
            f"{tuple(uniforms.shape)}"
        )
    cdf = torch.cumsum(probs.detach().to(torch.float64), dim=1)
    total = cdf[:, -1:]
    if not bool(torch.all(total > 0)):
        raise ValueError("every row of probs must have a positive sum")
    u = uniforms.to(device=cdf.device, dtype=torch.float64) * total
    idx = torch.searchsorted(cdf, u.contiguous(), right=True)
    return idx.clamp_(max=probs.shape[1] - 1)


def sample_indices(probs: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``shots`` basis indices per row of probs (B, K) -> long (B, shots) on probs' device.

    The uniforms come from ``generator`` (on its own device) in float64.
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    if probs.dim() == 1:
        probs = probs.unsqueeze(0)
    u = torch.rand((probs.shape[0], shots), generator=generator, dtype=torch.float64, device=generator.device)
    return inverse_cdf(probs, u.to(probs.device))


def chain_rule_bits(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Bits float32 (S, n) drawn from probs (2**n,) one bit at a time: bit q = u[:, q] < P(x_q = 1 | x_<q).

    The bitwise inverse CDF: with uniforms (S, n) in [0, 1) it is the same map as ``u < p`` for a product of
    Bernoulli(p) bits, so a Bernoulli(0.5) latent, a trained product prior and a QCBM share their uniforms and
    their sampling path (for an exactly uniform probs every conditional is exactly 0.5). Marginal tables are
    sums in float64; bit q is bit q of the basis index."""
    n = uniforms.shape[-1]
    if probs.dim() != 1 or probs.shape[0] != 2**n:
        raise ValueError(f"probs must be (2**n,) = ({2**n},) for uniforms (S, {n}), got {tuple(probs.shape)}")
    tables = [probs.detach().to(torch.float64)]  # tables[k] = P(x_0 .. x_{n-1-k}) over the low n-k bits
    for _ in range(n):
        t = tables[-1]
        tables.append(t.reshape(2, -1).sum(0))
    tables.reverse()  # tables[k]: marginal of the low k bits, (2**k,)
    u = uniforms.to(device=probs.device, dtype=torch.float64)
    idx = torch.zeros(u.shape[0], dtype=torch.long, device=probs.device)
    bits = torch.empty(u.shape, dtype=torch.float32, device=probs.device)
    for k in range(n):
        den = tables[k][idx]
        one = tables[k + 1][idx + (1 << k)]
        cond = torch.where(den > 0, one / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
        b = u[:, k] < cond
        bits[:, k] = b
        idx = idx + (b.long() << k)
    return bits


def indices_to_bits(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Basis indices (...) -> float32 bits (..., n) in {0, 1}; component q is bit q (qubit q)."""
    shifts = torch.arange(n, device=idx.device, dtype=torch.long)
    return ((idx.long().unsqueeze(-1) >> shifts) & 1).to(torch.float32)


def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`indices_to_bits`: bits (..., n) -> long (...)."""
    n = bits.shape[-1]
    weights = 1 << torch.arange(n, device=bits.device, dtype=torch.long)
    return (bits.round().long() * weights).sum(-1)
