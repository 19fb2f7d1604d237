"""Latent sources: Bernoulli(0.5) bits, a trained product prior and QCBM samples, on one sampling path."""
import torch

import qgan.quantum as qq
from qgan.latent import BernoulliLatent, PriorLatent
from qgan.prior import ProductBackend, ProductPrior


def test_bernoulli_bits_are_binary_fair_and_reproducible():
    src = BernoulliLatent(8)
    a = src.sample(4000, torch.Generator().manual_seed(3))
    b = src.sample(4000, torch.Generator().manual_seed(3))
    assert a.shape == (4000, 8) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)
    assert abs(float(a.mean()) - 0.5) < 0.02


def test_qcbm_at_uniform_start_samples_all_bitstrings_uniformly_and_counts_calls():
    ans = qq.Ansatz(3)
    src = PriorLatent(ans, qq.ExactBackend(), ans.uniform_start())
    z = src.sample(8000, torch.Generator().manual_seed(0))
    assert z.shape == (8000, 3)
    idx = qq.bits_to_indices(z)
    freq = torch.bincount(idx, minlength=8).double() / 8000
    assert float((freq - 0.125).abs().max()) < 0.02
    assert src.circuit_runs == 1  # one circuit run for the whole draw


def test_bernoulli_product_at_zero_logits_and_uniform_qcbm_draw_identical_latents():
    n = 6
    ans = qq.Ansatz(n)
    sources = [BernoulliLatent(n), PriorLatent(ProductPrior(n), ProductBackend(), torch.zeros(n, dtype=torch.float64)),
               PriorLatent(ans, qq.ExactBackend(), ans.uniform_start())]
    draws = [s.sample(5000, torch.Generator().manual_seed(11)) for s in sources]
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])


def test_product_prior_samples_follow_its_marginals():
    prior = PriorLatent(ProductPrior(3), ProductBackend(), torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64))
    z = prior.sample(40000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.double().mean(0), torch.sigmoid(prior.theta), atol=0.01, rtol=0)
    p = prior.probabilities()
    assert abs(float(p.sum()) - 1.0) < 1e-12
    d = prior.diagnostics()
    assert d["prior_exact"] and abs(d["prior_total_correlation_bits"]) < 1e-9  # independent bits


def test_qcbm_samples_follow_the_current_theta():
    ans = qq.Ansatz(2)
    src = PriorLatent(ans, qq.ExactBackend(), ans.uniform_start())
    theta = torch.zeros(ans.num_params, dtype=torch.float64)  # identity circuit: always |00>
    src.set_theta(theta)
    z = src.sample(100, torch.Generator().manual_seed(0))
    assert float(z.sum()) == 0.0


def test_pool_mode_resamples_the_last_bitstrings_without_new_circuit_calls():
    ans = qq.Ansatz(3)
    bk = qq.ExactBackend()
    src = PriorLatent(ans, bk, ans.uniform_start(), mode="pool", pool_size=2,
                      pool_generator=torch.Generator().manual_seed(1), from_backend=True)
    src.set_theta(ans.uniform_start(), samples=torch.tensor([5, 6]))
    idx = qq.bits_to_indices(src.sample(200, torch.Generator().manual_seed(2)))
    assert set(idx.tolist()) == {5, 6}
    assert bk.circuit_calls == 0 and src.circuit_runs == 0
    src.set_theta(ans.uniform_start())  # refill: one run with pool_size shots
    assert bk.circuit_calls == 1 and src.pool.shape == (2,)
    state = src.state_dict()
    other = PriorLatent(ans, bk, ans.uniform_start(), mode="pool", pool_size=2)
    other.load_state_dict(state)
    assert torch.equal(other.pool, src.pool)
    assert not other.diagnostics()["prior_exact"]  # a pool's diagnostics are estimates from the pool


def test_bernoulli_pool_holds_pool_size_bitstrings_for_the_whole_trial():
    src = BernoulliLatent(10, pool_size=7, pool_generator=torch.Generator().manual_seed(4))
    src.start()
    z = src.sample(3000, torch.Generator().manual_seed(5))
    assert len(torch.unique(qq.bits_to_indices(z))) <= 7
