"""Ansatz layout: connectivity pairs, parameter counts, starting points, input validation."""

import math

import pytest
import torch

from qgan.quantum import Ansatz, probabilities


@pytest.mark.parametrize(
    "n,full,reduced",
    [(4, 22, 22), (6, 39, 36), (8, 60, 50), (10, 85, 64), (12, 114, 78), (14, 147, 92), (16, 184, 106)],
)
def test_parameter_counts_match_spec_table(n, full, reduced):
    assert Ansatz(n, 1, "full").num_params == full
    assert Ansatz(n, 1, "reduced").num_params == reduced


def test_parameter_count_formula_with_layers():
    for n in (2, 5, 12):
        for layers in (1, 2, 3):
            for conn in ("full", "reduced"):
                a = Ansatz(n, layers, conn)
                assert a.num_params == 2 * n + layers * (len(a.pairs) + 2 * n)


def test_pairs_are_lexicographic_with_paper_gate_counts():
    full = Ansatz(12, 1, "full")
    red = Ansatz(12, 1, "reduced")
    assert len(full.pairs) == 66 and len(red.pairs) == 30
    assert full.pairs == sorted(full.pairs)
    assert red.pairs[:4] == [(0, 1), (0, 2), (0, 3), (1, 2)]
    assert all(1 <= j - i <= 3 for i, j in red.pairs)
    assert Ansatz(4, 1, "reduced").pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_layer_slices_partition_the_parameter_vector():
    a = Ansatz(5, 3, "reduced")
    covered = list(range(a.num_params)[a.region1_rx]) + list(range(a.num_params)[a.region1_rz])
    for layer in range(3):
        sl = a.layer_slices(layer)
        for s in (sl.rxx, sl.rz, sl.rx):
            covered += list(range(a.num_params)[s])
    assert covered == list(range(a.num_params))


@pytest.mark.parametrize("conn", ["full", "reduced"])
@pytest.mark.parametrize("layers", [1, 2])
def test_uniform_start_gives_uniform_probabilities(conn, layers):
    for n in (1, 3, 7, 12):
        a = Ansatz(n, layers, conn)
        theta = a.uniform_start()
        assert theta.dtype == torch.float64
        assert torch.all(theta[: n] == math.pi / 2) and torch.all(theta[n:] == 0)
        p = probabilities(a, theta)
        torch.testing.assert_close(p, torch.full_like(p, 2.0**-n), rtol=1e-13, atol=0)


def test_random_start_is_deterministic_by_generator_and_in_range():
    a = Ansatz(6, 2, "full")
    t1 = a.random_start(torch.Generator().manual_seed(5))
    t2 = a.random_start(torch.Generator().manual_seed(5))
    t3 = a.random_start(torch.Generator().manual_seed(6))
    assert t1.shape == (a.num_params,) and t1.dtype == torch.float64
    assert torch.equal(t1, t2) and not torch.equal(t1, t3)
    assert t1.min() >= -math.pi and t1.max() < math.pi


@pytest.mark.parametrize(
    "kwargs",
    [dict(n=0), dict(n=3, layers=0), dict(n=3, connectivity="ring"), dict(n=2.5), dict(n=3, layers=True)],
)
def test_bad_ansatz_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Ansatz(**kwargs)


def test_wrong_theta_shape_raises_value_error():
    a = Ansatz(4)
    with pytest.raises(ValueError, match="shape"):
        probabilities(a, torch.zeros(a.num_params + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        probabilities(a, torch.zeros(2, 3, a.num_params, dtype=torch.float64))
