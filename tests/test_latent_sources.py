"""Latent sources: Bernoulli(0.5) bits and QCBM samples through a backend."""
import torch

import qgan.quantum as qq
from qgan.latent import BernoulliLatent, QCBMLatent


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
    bk = qq.ExactBackend()
    src = QCBMLatent(ans, bk, ans.uniform_start())
    z = src.sample(8000, torch.Generator().manual_seed(0))
    assert z.shape == (8000, 3)
    idx = qq.bits_to_indices(z)
    freq = torch.bincount(idx, minlength=8).double() / 8000
    assert float((freq - 0.125).abs().max()) < 0.02
    assert bk.circuit_calls == 1  # one circuit run for the whole draw


def test_qcbm_samples_follow_the_current_theta():
    ans = qq.Ansatz(2)
    src = QCBMLatent(ans, qq.ExactBackend(), ans.uniform_start())
    theta = torch.zeros(ans.num_params, dtype=torch.float64)  # identity circuit: always |00>
    src.set_theta(theta)
    z = src.sample(100, torch.Generator().manual_seed(0))
    assert float(z.sum()) == 0.0


def test_pool_mode_resamples_the_last_bitstrings_without_new_circuit_calls():
    ans = qq.Ansatz(3)
    bk = qq.ExactBackend()
    src = QCBMLatent(ans, bk, ans.uniform_start(), mode="pool", pool_shots=10,
                     pool_generator=torch.Generator().manual_seed(1))
    src.set_theta(ans.uniform_start(), samples=torch.tensor([5, 6]))
    idx = src.sample_indices(200, torch.Generator().manual_seed(2))
    assert set(idx.tolist()) == {5, 6}
    assert bk.circuit_calls == 0
    src.set_theta(ans.uniform_start())  # refill: one run with pool_shots shots
    assert bk.circuit_calls == 1 and src.pool.shape == (10,)
    state = src.state_dict()
    other = QCBMLatent(ans, bk, ans.uniform_start(), mode="pool")
    other.load_state_dict(state)
    assert torch.equal(other.pool, src.pool)
