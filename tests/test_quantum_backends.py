"""Backends (exact, aer, aer-noisy, ionq lazy import), run_aer bit order, noise model."""

import sys
import types

import numpy as np
import pytest
import torch

from qgan.quantum import AerBackend, Ansatz, Backend, ExactBackend, make_backend, probabilities
from qgan.quantum.backends import run_aer
from qgan.quantum.noise import aria2_figures, aria2_noise_model, apply_readout_error, noisy_probabilities


def _tvd_counts(samples: torch.Tensor, probs: torch.Tensor) -> float:
    emp = torch.bincount(samples, minlength=probs.numel()).double() / samples.numel()
    return 0.5 * float((emp - probs.double()).abs().sum())


def test_exact_backend_samples_shape_counts_and_determinism():
    a = Ansatz(4, 1, "full")
    g = torch.Generator().manual_seed(0)
    thetas = torch.stack([a.random_start(g) for _ in range(3)])
    be = make_backend("exact")
    assert isinstance(be, ExactBackend) and isinstance(be, Backend) and be.name == "exact"
    s1 = be.sample(a, thetas, 500, torch.Generator().manual_seed(1))
    s2 = be.sample(a, thetas, 500, torch.Generator().manual_seed(1))
    assert s1.shape == (3, 500) and s1.dtype == torch.long and torch.equal(s1, s2)
    assert be.circuit_calls == 6
    be.sample(a, thetas[0], 10, torch.Generator())
    assert be.circuit_calls == 7


@pytest.mark.parametrize("name", ["exact", "aer"])
def test_backend_samples_follow_exact_probabilities(name):
    a = Ansatz(4, 2, "reduced")
    thetas = torch.stack([a.random_start(torch.Generator().manual_seed(s)) for s in (21, 22)])
    p = probabilities(a, thetas)
    s = make_backend(name).sample(a, thetas, 20_000, torch.Generator().manual_seed(2))
    for b in range(2):
        assert _tvd_counts(s[b], p[b]) < 0.03  # shot-noise TVD at 20k shots over 16 outcomes is ~0.01


def test_aer_backend_native_ideal_matches_exact_probabilities():
    a = Ansatz(3, 1, "full")
    theta = a.random_start(torch.Generator().manual_seed(5))
    s = AerBackend(native=True).sample(a, theta, 20_000, torch.Generator().manual_seed(3))
    assert _tvd_counts(s[0], probabilities(a, theta)[0]) < 0.03


def test_run_aer_count_keys_are_little_endian_and_seeded():
    a = Ansatz(5, 1, "reduced")
    theta = torch.zeros(a.num_params, dtype=torch.float64)
    theta[1] = np.pi  # flip qubit 1
    theta[4] = np.pi  # flip qubit 4
    for circ in (a.to_qiskit(theta, measure=True), a.to_native(theta)):
        (counts,) = run_aer([circ], 100, seed=1)
        assert counts == {"10010": 100} and int("10010", 2) == 2**1 + 2**4
    th = a.random_start(torch.Generator().manual_seed(9))
    c1 = run_aer([a.to_native(th), a.to_qiskit(th, measure=True)], 300, seed=4)
    c2 = run_aer([a.to_native(th), a.to_qiskit(th, measure=True)], 300, seed=4)
    assert c1 == c2 and all(sum(c.values()) == 300 for c in c1)


def test_run_aer_rejects_unmeasured_circuits():
    a = Ansatz(2)
    with pytest.raises(ValueError, match="measure"):
        run_aer([a.to_qiskit(a.uniform_start())], 10)


def test_noisy_sampling_differs_measurably_from_ideal():
    # theta = 0: the ideal outcome is 0000 with certainty; readout and gate errors put ~2% elsewhere.
    a = Ansatz(4, 1, "full")
    theta = torch.zeros(a.num_params, dtype=torch.float64)
    ideal = make_backend("aer").sample(a, theta, 4000, torch.Generator().manual_seed(0))
    noisy_be = make_backend("aer-noisy")
    assert noisy_be.name == "aer-noisy" and noisy_be.native
    noisy = noisy_be.sample(a, theta, 4000, torch.Generator().manual_seed(0))
    assert int((ideal != 0).sum()) == 0
    wrong = int((noisy != 0).sum())
    assert 20 < wrong < 300, wrong  # expected ~ 4000 * (4 * 0.0039 + gate errors) ~ 80
    # without noise figures the same native path is ideal again
    silent = make_backend("aer-noisy", error_1q=0.0, error_2q=0.0, readout_error=0.0)
    assert int((silent.sample(a, theta, 2000, torch.Generator().manual_seed(0)) != 0).sum()) == 0


def test_noisy_distribution_exact_and_reduced_is_closer_to_ideal_than_full():
    n = 8
    tvd = {}
    for conn in ("full", "reduced"):
        a = Ansatz(n, 1, conn)
        theta = a.random_start(torch.Generator().manual_seed(31))
        ideal = probabilities(a, theta)[0].numpy()
        noisy = noisy_probabilities(a.to_native(theta))
        noiseless = noisy_probabilities(a.to_native(theta), error_1q=0.0, error_2q=0.0, readout_error=0.0)
        np.testing.assert_allclose(noiseless, ideal, atol=1e-10)
        assert noisy.sum() == pytest.approx(1.0, abs=1e-10)
        tvd[conn] = 0.5 * np.abs(noisy - ideal).sum()
    assert tvd["full"] > tvd["reduced"] > 0.005


def test_noise_model_attaches_to_native_gate_labels_and_overrides():
    nm = aria2_noise_model()
    assert {"gpi", "gpi2", "ms"} <= set(nm.noise_instructions)
    assert aria2_figures(error_2q=0.01).error_2q == 0.01
    assert aria2_noise_model(thermal_relaxation=True) is not None
    with pytest.raises(ValueError, match="unknown"):
        aria2_noise_model(two_qubit_error=0.01)
    with pytest.raises(ValueError, match="error_2q"):
        aria2_noise_model(error_2q=0.7)


def test_readout_error_flips_each_bit_independently():
    p = np.zeros(4)
    p[0] = 1.0
    out = apply_readout_error(p, 0.1)
    np.testing.assert_allclose(out, [0.81, 0.09, 0.09, 0.01])


def test_make_backend_ionq_is_lazy_and_unknown_names_fail(monkeypatch):
    fake = types.ModuleType("qgan.ionq")

    class IonQBackend(Backend):
        name = "ionq"

        def __init__(self, **options):
            super().__init__()
            self.options = options

    fake.IonQBackend = IonQBackend
    monkeypatch.setitem(sys.modules, "qgan.ionq", fake)
    be = make_backend("ionq", backend_name="simulator")
    assert isinstance(be, IonQBackend) and be.options == {"backend_name": "simulator"}
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("cirq")
