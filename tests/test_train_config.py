"""TrialConfig: spec defaults, round trip, validation messages."""
import json

import pytest

import qgan.quantum as qq
from qgan.train import EXACT_MAX_QUBITS, TrialConfig, update_epochs


def test_defaults_follow_the_spec():
    c = TrialConfig()
    assert (c.gp_lambda, c.n_critic, c.lr_g, c.lr_d, c.beta1, c.beta2, c.batch_size) == (10.0, 1, 1e-4, 1e-4, 0.0, 0.9, 64)
    # spec.md §3 correction: the uniform start plus a small perturbation (the exact uniform start is the null arm)
    assert (c.n, c.layers, c.connectivity, c.theta_init) == (12, 1, "full", "perturbed")
    assert (c.qcbm_optimizer, c.qcbm_lr, c.fd_eps, c.qcbm_samples) == ("fd", 0.1, 0.1, 1000)
    assert (c.update_every, c.qcbm_epochs, c.eval_size, c.eval_every, c.mmd_kernel, c.width) == (
        30, 100, 256, 1, "energy", 64)


def test_to_dict_round_trips_through_json():
    c = TrialConfig.from_dict({"n": 6, "model": "bernoulli", "qcbm_optimizer": "spsa", "spsa_calibrate": True,
                               "lr_g": 2e-4, "data_source": "/tmp/x.npz"})
    d = json.loads(json.dumps(c.to_dict()))
    assert TrialConfig.from_dict(d) == c
    assert set(d) == {f for f in TrialConfig.__dataclass_fields__}


def test_ints_given_as_whole_floats_are_accepted_and_ints_for_floats():
    c = TrialConfig.from_dict({"n": 6.0, "gp_lambda": 5, "lr_g": "1e-4"})  # PyYAML reads 1e-4 as a string
    assert c.n == 6 and isinstance(c.n, int) and c.gp_lambda == 5.0 and isinstance(c.gp_lambda, float)
    assert c.lr_g == 1e-4
    with pytest.raises(ValueError, match="lr_d must be a number"):
        TrialConfig.from_dict({"lr_d": "fast"})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"nn": 3}, "unknown config key"),
        ({"n": 0}, "n must lie in 1.."),
        ({"n": qq.MAX_QUBITS + 1}, "MAX_QUBITS"),
        ({"n": EXACT_MAX_QUBITS + 1, "qcbm_optimizer": "exact"}, "exact QCBM optimiser"),
        ({"connectivity": "ring"}, "connectivity"),
        ({"phase": "martensite"}, "phase"),
        ({"model": "gauss"}, "model"),
        ({"qcbm_optimizer": "adam"}, "qcbm_optimizer"),
        ({"batch_size": 100, "train_size": 50}, "larger than the training set"),
        ({"lr_g": -1e-4}, "lr_g"),
        ({"qcbm_lr": -0.1}, "qcbm_lr"),
        ({"fd_eps": 0.0}, "fd_eps"),
        ({"gp_lambda": float("nan")}, "gp_lambda"),
        ({"n": 2.5}, "n must be an integer"),
        ({"spsa_calibrate": "yes"}, "spsa_calibrate"),
        ({"mmd_kernel": "cosine"}, "mmd_kernel"),
        ({"backend": "qpu"}, "backend"),
        ({"device": "tpu"}, "device"),
        ({"data_source": "images.h5"}, "data_source"),
        ({"beta2": 1.0}, "beta2"),
        ({"epochs": 0}, "epochs"),
        ({"qcbm_optimizer": "exact", "backend": "aer"}, "needs backend 'exact'"),
    ],
)
def test_from_dict_rejects_bad_values_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        TrialConfig.from_dict(bad)


def test_exact_limit_only_applies_to_the_exact_qcbm_optimiser():
    TrialConfig.from_dict({"n": EXACT_MAX_QUBITS + 1, "qcbm_optimizer": "fd"})
    TrialConfig.from_dict({"n": EXACT_MAX_QUBITS + 1, "qcbm_optimizer": "exact", "model": "bernoulli"})


def test_update_schedule_is_k_2k_up_to_qcbm_epochs():
    c = TrialConfig.from_dict({"update_every": 30, "qcbm_epochs": 100, "epochs": 4000})
    assert update_epochs(c) == [30, 60, 90]
    c = TrialConfig.from_dict({"update_every": 10, "qcbm_epochs": 100, "epochs": 4000})
    assert update_epochs(c) == list(range(10, 101, 10))
    c = TrialConfig.from_dict({"update_every": 2, "qcbm_epochs": 100, "epochs": 5})
    assert update_epochs(c) == [2, 4]
    assert update_epochs(TrialConfig.from_dict({"model": "bernoulli"})) == []
    assert update_epochs(TrialConfig.from_dict({"qcbm_epochs": 0})) == []
