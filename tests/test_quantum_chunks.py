"""Row chunking of the torch simulator and the chunked ExactBackend sampling path."""

import pytest
import torch
from qiskit.quantum_info import Statevector

import qgan.quantum.simulator as sim
from qgan.quantum import Ansatz, ExactBackend, probabilities, sample_indices, statevector


def _thetas(a: Ansatz, rows: int) -> torch.Tensor:
    return torch.stack([a.random_start(torch.Generator().manual_seed(100 + s)) for s in range(rows)])


@pytest.mark.parametrize("conn,layers", [("full", 1), ("reduced", 2)])
def test_chunked_probabilities_equal_one_chunk_and_qiskit(conn, layers, monkeypatch):
    a = Ansatz(6, layers, conn)
    thetas = _thetas(a, 7)
    whole = probabilities(a, thetas)
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 2 * 2**a.n)  # 2 rows per chunk, last chunk 1 row
    chunked = probabilities(a, thetas)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-14)
    assert chunked.shape == (7, 64)
    ref = torch.tensor(Statevector(a.to_qiskit(thetas[6])).probabilities())
    torch.testing.assert_close(chunked[6], ref, rtol=0, atol=1e-12)
    sv = statevector(a, thetas)
    assert sv.dtype == torch.complex128 and sv.shape == (7, 64)
    torch.testing.assert_close(sv.abs() ** 2, whole, rtol=0, atol=1e-14)


def test_gradient_flows_through_several_chunks(monkeypatch):
    a = Ansatz(4, 1, "full")
    thetas = _thetas(a, 3)
    w = torch.randn(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t1 = thetas.clone().requires_grad_(True)
    (g_whole,) = torch.autograd.grad((probabilities(a, t1) * w).sum(), t1)
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 16)  # one row per chunk
    t2 = thetas.clone().requires_grad_(True)
    (g_chunked,) = torch.autograd.grad((probabilities(a, t2) * w).sum(), t2)
    torch.testing.assert_close(g_chunked, g_whole, rtol=0, atol=1e-13)
    assert g_whole.abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_backend_chunked_sampling_equals_sample_indices_of_probabilities(dtype, monkeypatch):
    a = Ansatz(5, 1, "full")
    thetas = _thetas(a, 9).to(dtype)
    expected = sample_indices(probabilities(a, thetas), 300, torch.Generator().manual_seed(3))
    monkeypatch.setattr(sim, "_CHUNK_ELEMENTS", 4 * 2**a.n)  # 4 rows per chunk
    got = ExactBackend(sample_dtype=dtype).sample(a, thetas, 300, torch.Generator().manual_seed(3))
    assert got.dtype == torch.long and got.shape == (9, 300)
    assert torch.equal(got, expected)
    assert len(set(got[0].tolist())) > 5  # not a degenerate draw


def test_default_float32_sampling_matches_float64_draws_up_to_rare_boundary_moves():
    a = Ansatz(8, 1, "full")
    thetas = _thetas(a, 12)  # float64 parameters, as the trainer holds them
    exact64 = ExactBackend(sample_dtype=torch.float64).sample(a, thetas, 2000, torch.Generator().manual_seed(4))
    fast = ExactBackend().sample(a, thetas, 2000, torch.Generator().manual_seed(4))  # float32 simulation
    moved = fast != exact64
    assert moved.float().mean() < 2e-3  # the same uniforms land on the same index almost always
    assert ((fast - exact64).abs()[moved] == 1).all()  # and a moved draw goes to a neighbouring index only


def test_no_grad_polar_path_equals_differentiable_path_including_zero_amplitudes():
    a = Ansatz(8, 1, "full")  # split path (28 pairs * 256 > sign-matrix limit)
    thetas = torch.cat((_thetas(a, 3), a.uniform_start().unsqueeze(0)))
    thetas[1, a.region1_rx] = torch.pi / 2  # exact zeros in the X-basis half vectors
    thetas[1, a.region1_rz] = torch.pi / 2
    with torch.no_grad():
        fast = probabilities(a, thetas)
    t = thetas.clone().requires_grad_(True)
    slow = probabilities(a, t)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-13)
    assert torch.isfinite(torch.autograd.grad(slow[1, :7].sum(), t)[0]).all()
    torch.testing.assert_close(fast[3], torch.full((256,), 2.0**-8, dtype=torch.float64), rtol=0, atol=1e-15)
