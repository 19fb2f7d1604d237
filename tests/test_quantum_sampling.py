"""Inverse-CDF sampling: distribution (chi-square), large category counts, bit conversion."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from qgan.quantum import Ansatz, bits_to_indices, indices_to_bits, inverse_cdf, probabilities, sample_indices


def _chi2_pvalue(samples: torch.Tensor, probs: torch.Tensor) -> float:
    k = probs.numel()
    obs = torch.bincount(samples, minlength=k).double().numpy()
    exp = probs.double().numpy() * samples.numel()
    big = exp >= 5  # lump bins with small expectations into one
    obs_b = np.append(obs[big], obs[~big].sum())
    exp_b = np.append(exp[big], exp[~big].sum())
    if exp_b[-1] == 0:
        obs_b, exp_b = obs_b[:-1], exp_b[:-1]
    return float(chisquare(obs_b, exp_b * obs_b.sum() / exp_b.sum()).pvalue)


def test_sample_frequencies_pass_chi_square_against_probabilities():
    a = Ansatz(5, 1, "full")
    theta = a.random_start(torch.Generator().manual_seed(11))
    p = probabilities(a, theta)
    s = sample_indices(p, 40_000, torch.Generator().manual_seed(12))
    assert s.shape == (1, 40_000) and s.dtype == torch.long
    assert _chi2_pvalue(s[0], p[0]) > 1e-3
    # the same test rejects samples from a different circuit (the check has power)
    other = probabilities(a, a.random_start(torch.Generator().manual_seed(13)))
    s_other = sample_indices(other, 40_000, torch.Generator().manual_seed(12))
    assert _chi2_pvalue(s_other[0], p[0]) < 1e-6


def test_sampling_is_deterministic_by_generator_and_batched():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    s1 = sample_indices(p, 1000, torch.Generator().manual_seed(0))
    s2 = sample_indices(p, 1000, torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2)
    assert set(s1[0].tolist()) == {0, 1} and set(s1[1].tolist()) == {3}


def test_inverse_cdf_boundaries_and_zero_probability_categories():
    p = torch.tensor([[0.25, 0.0, 0.25, 0.5]], dtype=torch.float64)
    u = torch.tensor([[0.0, 0.2499, 0.25, 0.4999, 0.5, 0.9999999]], dtype=torch.float64)
    assert inverse_cdf(p, u).tolist() == [[0, 0, 2, 2, 3, 3]]
    # unnormalised rows are normalised
    assert inverse_cdf(2 * p, u).tolist() == [[0, 0, 2, 2, 3, 3]]


def test_inverse_cdf_works_beyond_2_pow_24_categories_at_n26():
    # A 2**26 probability vector built directly (a full n = 26 simulation is too slow for the test budget):
    # uniform, where a float32 cumsum would already lose exactness; float64 keeps every boundary exact.
    n = 26
    k = 2**n
    probs = torch.full((1, k), 2.0**-n, dtype=torch.float32)
    targets = torch.tensor([0, 2**24 - 1, 2**24, 2**24 + 1, 2**25 + 12345, k - 2, k - 1], dtype=torch.long)
    u = ((targets.double() + 0.5) / k).unsqueeze(0)
    assert torch.equal(inverse_cdf(probs, u)[0], targets)
    # samples cover the whole range: the top two bits are uniform (chi-square), so 3/4 lie at or above 2**24
    s = sample_indices(probs, 20_000, torch.Generator().manual_seed(1))[0]
    assert int(s.min()) >= 0 and int(s.max()) < k
    top = torch.div(s, 2**24, rounding_mode="floor")
    assert _chi2_pvalue(top, torch.full((4,), 0.25, dtype=torch.float64)) > 1e-3


def test_indices_to_bits_uses_bit_q_for_component_q():
    idx = torch.tensor([[0, 1, 6], [2**11, 5, 4095]])
    bits = indices_to_bits(idx, 12)
    assert bits.shape == (2, 3, 12) and bits.dtype == torch.float32
    assert bits[0, 2].tolist()[:4] == [0.0, 1.0, 1.0, 0.0]
    assert bits[1, 0, 11] == 1 and bits[1, 0, :11].sum() == 0
    assert torch.equal(bits_to_indices(bits), idx)


def test_bad_shots_and_shapes_raise_value_error():
    p = torch.full((1, 4), 0.25, dtype=torch.float64)
    with pytest.raises(ValueError, match="shots"):
        sample_indices(p, 0, torch.Generator())
    with pytest.raises(ValueError, match="same B"):
        inverse_cdf(torch.full((2, 4), 0.25), torch.rand(3, 5))
    with pytest.raises(ValueError, match="positive sum"):
        inverse_cdf(torch.zeros(1, 4), torch.rand(1, 5))
