"""Torch statevector simulator against qiskit, batching, precision, gradients, limits."""

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

import qgan.quantum.simulator as sim
from qgan.quantum import MAX_QUBITS, Ansatz, probabilities


def _cases():
    for n in range(2, 9):
        for conn in ("full", "reduced"):
            for layers in (1, 2):
                yield n, conn, layers


@pytest.mark.parametrize("n,conn,layers", list(_cases()))
def test_probabilities_match_qiskit_statevector_including_bit_order(n, conn, layers):
    a = Ansatz(n, layers, conn)
    g = torch.Generator().manual_seed(1000 * n + 10 * layers + (conn == "full"))
    theta = a.random_start(g)
    ours = probabilities(a, theta)[0].numpy()
    ref = Statevector(a.to_qiskit(theta)).probabilities()  # qiskit little-endian: bit q = qubit q
    np.testing.assert_allclose(ours, ref, atol=1e-10, rtol=0)


def test_bit_order_single_qubit_flip_sets_bit_q():
    # Only qubit 2 rotated by pi: all mass on index 2**2 (qubit q = bit q), in both simulator and qiskit.
    a = Ansatz(4, 1, "reduced")
    theta = torch.zeros(a.num_params, dtype=torch.float64)
    theta[2] = np.pi
    p = probabilities(a, theta)[0]
    assert int(torch.argmax(p)) == 4 and float(p[4]) == pytest.approx(1.0, abs=1e-12)
    ref = Statevector(a.to_qiskit(theta)).probabilities()
    assert int(np.argmax(ref)) == 4


def test_batch_rows_equal_single_evaluations_and_sum_to_one():
    a = Ansatz(5, 2, "full")
    g = torch.Generator().manual_seed(3)
    thetas = torch.stack([a.random_start(g) for _ in range(4)])
    batch = probabilities(a, thetas)
    assert batch.shape == (4, 32) and batch.dtype == torch.float64
    for b in range(4):
        torch.testing.assert_close(batch[b], probabilities(a, thetas[b])[0], rtol=0, atol=1e-14)
    torch.testing.assert_close(batch.sum(1), torch.ones(4, dtype=torch.float64))


def test_float32_follows_dtype_and_agrees_with_float64():
    a = Ansatz(6, 1, "full")
    theta = a.random_start(torch.Generator().manual_seed(4))
    p32 = probabilities(a, theta.float())
    assert p32.dtype == torch.float32
    torch.testing.assert_close(p32.double(), probabilities(a, theta), atol=1e-5, rtol=0)


@pytest.mark.parametrize("conn", ["full", "reduced"])
def test_split_phase_build_equals_sign_matrix_path(conn, monkeypatch):
    a = Ansatz(7, 2, conn)  # odd n: unequal halves
    thetas = torch.stack([a.random_start(torch.Generator().manual_seed(s)) for s in range(3)])
    via_matrix = probabilities(a, thetas)
    monkeypatch.setattr(sim, "_SIGN_MATRIX_MAX_ENTRIES", 0)
    via_split = probabilities(a, thetas)
    torch.testing.assert_close(via_split, via_matrix, rtol=0, atol=1e-13)


def test_gradient_matches_central_finite_differences_float64():
    a = Ansatz(4, 2, "full")
    g = torch.Generator().manual_seed(7)
    theta = a.random_start(g)
    weights = torch.randn(2**a.n, dtype=torch.float64, generator=g)  # random linear functional of p

    def f(t):
        return (probabilities(a, t)[0] * weights).sum()

    t = theta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(t), t)
    eps = 1e-6
    fd = torch.empty_like(theta)
    for i in range(a.num_params):
        e = torch.zeros_like(theta)
        e[i] = eps
        fd[i] = (f(theta + e) - f(theta - e)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    assert grad.abs().max() > 1e-3  # non-trivial gradient


def test_full_jacobian_matches_finite_differences_reduced_connectivity():
    a = Ansatz(3, 1, "reduced")
    theta = a.random_start(torch.Generator().manual_seed(8))
    jac = torch.autograd.functional.jacobian(lambda t: probabilities(a, t)[0], theta)
    eps = 1e-6
    fd = torch.stack(
        [
            (probabilities(a, theta + eps * e)[0] - probabilities(a, theta - eps * e)[0]) / (2 * eps)
            for e in torch.eye(a.num_params, dtype=torch.float64)
        ],
        dim=1,
    )
    torch.testing.assert_close(jac, fd, rtol=1e-6, atol=1e-8)


def test_too_many_qubits_raise_value_error():
    a = Ansatz(MAX_QUBITS + 1, 1, "reduced")
    with pytest.raises(ValueError, match="MAX_QUBITS"):
        probabilities(a, torch.zeros(a.num_params, dtype=torch.float64))


def test_integer_thetas_raise_value_error():
    a = Ansatz(3)
    with pytest.raises(ValueError, match="floating"):
        probabilities(a, torch.zeros(a.num_params, dtype=torch.long))


@pytest.mark.parametrize("conn,block", [("full", 1), ("reduced", 2), ("full", 4), ("reduced", 7)])
def test_any_gate_block_size_and_split_phase_match_qiskit_and_gradients(conn, block, monkeypatch):
    # the large-n phase build (forced) and Kronecker blocks that do not divide n = 7
    monkeypatch.setattr(sim, "_BLOCK", block)
    monkeypatch.setattr(sim, "_SIGN_MATRIX_MAX_ENTRIES", 0)
    a = Ansatz(7, 2, conn)
    theta = a.random_start(torch.Generator().manual_seed(12 + block))
    np.testing.assert_allclose(
        probabilities(a, theta)[0].numpy(), Statevector(a.to_qiskit(theta)).probabilities(), atol=1e-10, rtol=0
    )
    w = torch.randn(2**7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = theta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((probabilities(a, t)[0] * w).sum(), t)
    for i in (0, 9, a.num_params - 1):
        e = torch.zeros_like(theta)
        e[i] = 1e-6
        fd = ((probabilities(a, theta + e)[0] - probabilities(a, theta - e)[0]) * w).sum() / 2e-6
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("n,conn", [(10, "full"), (11, "reduced")])
def test_probabilities_match_qiskit_at_larger_n(n, conn):
    a = Ansatz(n, 1, conn)
    theta = a.random_start(torch.Generator().manual_seed(n))
    np.testing.assert_allclose(
        probabilities(a, theta)[0].numpy(), Statevector(a.to_qiskit(theta)).probabilities(), atol=1e-10, rtol=0
    )
