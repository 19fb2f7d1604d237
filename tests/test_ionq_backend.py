"""qgan.ionq: JSON <-> circuit conversion, the single-attempt connection, IonQBackend, token hygiene."""
from __future__ import annotations

import pytest
import torch

from qgan.ionq import (
    IonQBackend,
    IonQConnection,
    circuit_from_ionq_json,
    circuit_to_ionq_json,
    counts_from_probabilities,
    gate_counts,
    qpu_seconds,
    resolve_token,
    scrub,
    translate_error,
)
from qgan.ionq.emulator import Emulator, EmulatorConfig, fetch_stats
from qgan.quantum import Ansatz, make_backend, probabilities

TOKEN = "ionq-test-token-77aa3c19"


def test_native_circuit_survives_the_ionq_json_round_trip():
    from qiskit.quantum_info import Operator

    a = Ansatz(3, connectivity="full")
    theta = a.random_start(torch.Generator().manual_seed(3))
    qc = a.to_native(theta, measure=False)
    instr, nq = circuit_to_ionq_json(qc)
    assert nq == 3 and {i["gate"] for i in instr} <= {"gpi", "gpi2", "ms"}
    back = circuit_from_ionq_json(instr, nq, measure=False)
    assert Operator(back).equiv(Operator(qc))
    n1, n2 = gate_counts(instr)
    assert n2 == len(a.pairs) == 3 and n1 + n2 == len(instr)
    assert qpu_seconds(n1, n2, 1000) == pytest.approx(1000 * (n1 * 135e-6 + n2 * 600e-6))


def test_unknown_gate_or_bad_qubit_is_rejected():
    with pytest.raises(ValueError, match="unsupported gate"):
        circuit_from_ionq_json([{"gate": "warp", "target": 0}], 1)
    with pytest.raises(ValueError, match="out of range"):
        circuit_from_ionq_json([{"gate": "gpi", "target": 5, "phase": 0}], 2)


def test_counts_from_probabilities_sum_to_shots():
    c = counts_from_probabilities({"0": 1 / 3, "1": 1 / 3, "3": 1 / 3}, 100)
    assert sum(c.values()) == 100 and set(c) == {0, 1, 3} and max(c.values()) - min(c.values()) <= 1


def test_ionq_backend_samples_follow_the_born_distribution():
    a = Ansatz(3, connectivity="reduced")
    thetas = torch.stack([a.random_start(torch.Generator().manual_seed(s)) for s in (1, 2)])
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, ideal=True)) as emu:
        bk = make_backend("ionq", token=TOKEN, url=emu.url, poll_interval=0.05)
        assert isinstance(bk, IonQBackend)
        idx = bk.sample(a, thetas, 4000, torch.Generator().manual_seed(0))
    assert idx.shape == (2, 4000) and idx.dtype == torch.long and bk.circuit_calls == 2
    p = probabilities(a, thetas)
    for b in range(2):
        emp = torch.bincount(idx[b], minlength=8).double() / 4000
        assert 0.5 * (emp - p[b]).abs().sum().item() < 0.05  # total variation; shot noise ~0.02


def test_uncertain_submission_is_found_by_name_and_not_sent_twice():
    a = Ansatz(2, connectivity="full")
    theta = a.uniform_start()
    # Every submission creates the job but answers 503, as if the response was lost.
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.05, fault_after_create_prob=1.0)) as emu:
        bk = IonQBackend(token=TOKEN, url=emu.url, poll_interval=0.05)
        idx = bk.sample(a, theta, 50, torch.Generator().manual_seed(0))
        stats = fetch_stats(emu.url, TOKEN)
    assert idx.shape == (1, 50)
    assert stats["counters"]["created_then_503"] == 1
    assert list(stats["submissions"].values()) == [1] and stats["duplicates"] == {}


def test_token_is_scrubbed_from_errors_and_never_in_repr(monkeypatch):
    import requests
    from qiskit_ionq import exceptions as qx

    monkeypatch.setenv("IONQ_API_KEY", TOKEN)
    assert resolve_token() == TOKEN
    res = requests.models.Response()
    res.status_code = 500
    res._content = ('{"error": {"type": "x", "message": "bad key ' + TOKEN + '"}}').encode()
    res.headers["X-Echo"] = TOKEN
    err = translate_error(qx.IonQAPIError.from_response(res), submitting=True)
    assert TOKEN not in str(err) and "***" in str(err)
    assert err.status == 500 and err.retriable and err.uncertain
    assert scrub(f"a {TOKEN} b") == "a *** b"
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        conn = IonQConnection(url=emu.url)
        assert TOKEN not in repr(conn)
        with pytest.raises(TypeError):
            import pickle

            pickle.dumps(conn)


def test_missing_token_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("IONQ_API_KEY", raising=False)
    monkeypatch.delenv("IONQ_API_KEY_FILE", raising=False)
    with pytest.raises(ValueError, match="IONQ_API_KEY"):
        resolve_token()


def test_wrong_token_gives_a_non_retriable_401_without_the_token():
    wrong = "not-the-token-0f0f0f0f"
    with Emulator(EmulatorConfig(token=TOKEN, latency=0.0)) as emu:
        conn = IonQConnection(token=wrong, url=emu.url)
        from qiskit import QuantumCircuit

        qc = QuantumCircuit(1, 1)
        qc.measure(0, 0)
        with pytest.raises(Exception) as info:
            conn.submit(qc, 10, "x")
    assert getattr(info.value, "status", None) == 401 and not info.value.retriable
    assert wrong not in str(info.value)
