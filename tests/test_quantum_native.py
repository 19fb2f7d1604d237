"""Native-gate compilation (GPI, GPI2, MS; virtual RZ) against the abstract circuit."""

import math

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator, Statevector
from qiskit_ionq.ionq_gates import GPIGate, MSGate

from qgan.quantum import Ansatz, probabilities
from qgan.quantum.native import rxx_to_ms


def _cases():
    for n in range(2, 9):
        for conn in ("full", "reduced"):
            for layers in (1, 2):
                yield n, conn, layers


@pytest.mark.parametrize("n,conn,layers", list(_cases()))
def test_native_circuit_has_same_probabilities_as_abstract(n, conn, layers):
    a = Ansatz(n, layers, conn)
    theta = a.random_start(torch.Generator().manual_seed(77 * n + layers + 3 * (conn == "full")))
    native = a.to_native(theta, measure=False)
    p_native = Statevector(native).probabilities()  # uses the qiskit_ionq gate matrices
    p_abstract = Statevector(a.to_qiskit(theta)).probabilities()
    np.testing.assert_allclose(p_native, p_abstract, atol=1e-6, rtol=0)
    np.testing.assert_allclose(p_native, probabilities(a, theta)[0].numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("conn,ms", [("full", 66), ("reduced", 30)])
def test_native_gate_set_and_counts_at_n12(conn, ms):
    a = Ansatz(12, 1, conn)
    theta = a.random_start(torch.Generator().manual_seed(1))
    ops = a.to_native(theta).count_ops()
    assert set(ops) <= {"gpi", "gpi2", "ms", "measure"}
    assert ops["ms"] == ms
    assert ops["gpi2"] == 2 * 12 * 2  # two GPI2 per RX, RX in region 1 and region 3
    assert ops["measure"] == 12
    assert "cx" not in ops and "rz" not in ops


def test_ms_angles_stay_in_ionq_range_and_equal_rxx_up_to_phase():
    for theta in np.linspace(-3 * math.pi, 3 * math.pi, 61):
        p0, p1, t, flip = rxx_to_ms(theta)
        assert 0.0 <= t <= 0.25 + 1e-15
        qc = QuantumCircuit(2)
        qc.append(MSGate(p0, p1, t), [0, 1])
        if flip:
            qc.append(GPIGate(0.0), [0])
            qc.append(GPIGate(0.0), [1])
        ref = QuantumCircuit(2)
        ref.rxx(theta, 0, 1)
        assert Operator(qc).equiv(Operator(ref)), theta


def test_uniform_start_native_circuit_keeps_uniform_distribution():
    a = Ansatz(6, 1, "reduced")
    p = Statevector(a.to_native(a.uniform_start(), measure=False)).probabilities()
    np.testing.assert_allclose(p, 2.0**-6, atol=1e-12)


def test_native_measurement_maps_qubit_q_to_clbit_q():
    qc = Ansatz(3).to_native(torch.zeros(Ansatz(3).num_params, dtype=torch.float64))
    meas = [ins for ins in qc.data if ins.operation.name == "measure"]
    assert [(qc.find_bit(m.qubits[0]).index, qc.find_bit(m.clbits[0]).index) for m in meas] == [(0, 0), (1, 1), (2, 2)]
