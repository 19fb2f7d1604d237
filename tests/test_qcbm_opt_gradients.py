"""QCBM optimisers: fd vs exact gradient, circuit-call counts, SPSA semantics, batched scoring."""
import math

import pytest
import torch
from torch import nn

import qgan.quantum as qq
from qgan import qcbm_opt
from qgan.qcbm_opt import FrozenScorer


class _TinyG(nn.Module):
    def __init__(self, n):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(n, 3, generator=g))

    def forward(self, z):
        return torch.tanh(z @ self.w * 2.0)


class _TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.v = nn.Parameter(torch.tensor([1.5, -2.0, 0.7]))

    def forward(self, x):
        return x @ self.v


def _setup(n=3, seed=1):
    ansatz = qq.Ansatz(n, layers=1, connectivity="full")
    g = torch.Generator().manual_seed(seed)
    theta = ansatz.uniform_start() + 0.4 * torch.randn(ansatz.num_params, generator=g, dtype=torch.float64)
    scorer = FrozenScorer(_TinyG(n).eval(), _TinyD().eval(), n, torch.device("cpu"))
    return ansatz, theta, scorer


def _exact_grad(ansatz, theta, f_all):
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(qcbm_opt.exact_loss(ansatz, t, f_all), t)
    return g


def test_exact_gradient_matches_numerical_derivative_of_the_exact_loss():
    ansatz, theta, scorer = _setup()
    f_all = scorer.all()
    g = _exact_grad(ansatz, theta, f_all)
    h = 1e-6
    num = torch.stack([
        (qcbm_opt.exact_loss(ansatz, theta + h * e, f_all) - qcbm_opt.exact_loss(ansatz, theta - h * e, f_all)) / (2 * h)
        for e in torch.eye(len(theta), dtype=torch.float64)
    ])
    torch.testing.assert_close(g, num, rtol=1e-5, atol=1e-8)
    assert g.abs().max() > 1e-3  # a real, non-trivial gradient


def test_fd_gradient_agrees_with_exact_gradient_within_sampling_error():
    ansatz, theta, scorer = _setup()
    f_all = scorer.all()
    eps, shots, lr, reps = 0.1, 4000, 1.0, 8
    grads = []
    for r in range(reps):
        res = qcbm_opt.fd_update(ansatz, qq.ExactBackend(), theta, scorer, torch.Generator().manual_seed(100 + r),
                                 lr=lr, eps=eps, shots=shots, common_random=True)
        grads.append((theta - res.theta) / lr)
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(reps)
    # the fd estimator is unbiased for the exact central difference at the same eps ...
    e = torch.eye(len(theta), dtype=torch.float64) * eps
    central = torch.stack([(qcbm_opt.exact_loss(ansatz, theta + d, f_all) - qcbm_opt.exact_loss(ansatz, theta - d, f_all))
                           / (2 * eps) for d in e])
    assert bool(((mean - central).abs() <= 5 * se + 1e-9).all())
    # ... which differs from the exact gradient only by O(eps^2)
    exact = _exact_grad(ansatz, theta, f_all)
    assert bool(((mean - exact).abs() <= 5 * se + 0.01 * exact.abs().max()).all())
    # common random numbers: the per-run spread is far below that of independent +- samples
    assert float(se.max()) < 0.05 * float(exact.abs().max()) * math.sqrt(reps)


def test_fd_makes_exactly_2p_circuit_calls_per_step_in_one_backend_call(monkeypatch):
    ansatz, theta, scorer = _setup(n=4)
    backend = qq.ExactBackend()
    batches = []
    orig = backend.probabilities
    monkeypatch.setattr(backend, "probabilities", lambda a, t: batches.append(t.shape[0]) or orig(a, t))
    qcbm_opt.fd_update(ansatz, backend, theta, scorer, torch.Generator().manual_seed(0), 0.1, 0.1, 50, steps=3)
    p = ansatz.num_params
    assert backend.circuit_calls == 3 * 2 * p
    assert batches == [2 * p] * 3  # one batched simulator call per step, not one per parameter


def test_spsa_cycle_makes_2k_plus_1_calls_and_calibration_adds_50():
    ansatz, theta, scorer = _setup(n=3)
    backend = qq.ExactBackend()
    g = torch.Generator().manual_seed(0)
    res = qcbm_opt.spsa_update(ansatz, backend, theta, scorer, g, iterations=7, a=0.2, c=0.1, shots=64)
    assert backend.circuit_calls == 2 * 7 + 1
    assert res.final_samples.shape == (64,)
    a = qcbm_opt.spsa_calibrate(ansatz, backend, theta, scorer, g, c=0.2, shots=64)
    assert backend.circuit_calls == 15 + 50
    assert a > 0 and math.isfinite(a)


def test_spsa_follows_qiskit_gain_sequences():
    """theta_K equals a hand-rolled Qiskit SPSA loop fed the same random draws:
    a_k = a / k^0.602, c_k = c / k^0.101, Delta in {+-1}, g = (L+ - L-) / (2 c_k) Delta."""
    ansatz, theta, scorer = _setup(n=2)
    a, c, k_max, shots = 0.3, 0.15, 4, 2000
    res = qcbm_opt.spsa_update(ansatz, qq.ExactBackend(), theta, scorer, torch.Generator().manual_seed(5),
                               k_max, a, c, shots=shots, common_random=True)
    g2 = torch.Generator().manual_seed(5)
    th = theta.clone()
    half = torch.full((len(th),), 0.5, dtype=torch.float64)
    for k in range(1, k_max + 1):
        delta = 1.0 - 2.0 * torch.bernoulli(half, generator=g2)
        ak, ck = a / k ** 0.602, c / k ** 0.101
        u = torch.rand(1, shots, generator=g2, dtype=torch.float64).repeat(2, 1)
        probs = qq.probabilities(ansatz, torch.stack([th + ck * delta, th - ck * delta]))
        f = scorer(qq.inverse_cdf(probs, u))
        lp, lm = -f.mean(1)
        th = th - ak * (lp - lm) / (2 * ck) * delta
    torch.testing.assert_close(res.theta, th)
    assert not torch.equal(res.theta, theta)


def test_exact_update_descends_and_counts_one_call_per_step():
    ansatz, theta, scorer = _setup(n=3)
    backend = qq.ExactBackend()
    f_all = scorer.all()
    res = qcbm_opt.exact_update(ansatz, backend, theta, scorer, lr=0.05, steps=2)
    assert backend.circuit_calls == 2
    assert float(qcbm_opt.exact_loss(ansatz, res.theta, f_all)) < float(qcbm_opt.exact_loss(ansatz, theta, f_all))
    assert res.loss == pytest.approx(float(qcbm_opt.exact_loss(ansatz, theta, f_all)))


def test_scorer_evaluates_each_distinct_bitstring_once():
    n = 5
    scorer = FrozenScorer(_TinyG(n).eval(), _TinyD().eval(), n, torch.device("cpu"), chunk=7)
    idx = torch.tensor([[3, 3, 9, 31], [9, 0, 3, 3]])
    vals = scorer(idx)
    assert scorer.forward_count == 4
    direct = _TinyD()(_TinyG(n)(qq.indices_to_bits(idx.reshape(-1), n))).detach().double().reshape(2, 4)
    torch.testing.assert_close(vals, direct)
    scorer(torch.tensor([31, 3]))
    assert scorer.forward_count == 4  # cached
    assert scorer.all().shape == (2**n,) and scorer.forward_count == 2**n
