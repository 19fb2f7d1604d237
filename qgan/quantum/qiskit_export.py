"""Export of the abstract ansatz (RX, RZ, RXX) to a qiskit QuantumCircuit (same bit order as the simulator)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from qiskit import QuantumCircuit

from qgan.quantum.ansatz import Ansatz


def theta_to_numpy(ansatz: Ansatz, theta: Any) -> np.ndarray:
    """One parameter vector (P,) (torch, numpy or sequence) as float64 numpy; ValueError on a wrong length."""
    if hasattr(theta, "detach"):
        theta = theta.detach().cpu().numpy()
    arr = np.asarray(theta, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (ansatz.num_params,):
        raise ValueError(
            f"theta must be one parameter vector of length {ansatz.num_params} for {ansatz!r}, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("theta contains NaN or infinite values")
    return arr


def gate_sequence(ansatz: Ansatz, theta: Any) -> Iterator[tuple[str, float, tuple[int, ...]]]:
    """The ansatz's gates in circuit order as (name, angle in rad, qubits), name in rx, rz, rxx.

    Region 1: RX then RZ on every qubit; per layer: RXX on every pair, then RZ then RX on every qubit. Every
    circuit builder (abstract qiskit, IonQ native) walks this one sequence.
    """
    th = theta_to_numpy(ansatz, theta)
    rx1, rz1 = th[ansatz.region1_rx], th[ansatz.region1_rz]
    for q in range(ansatz.n):
        yield "rx", float(rx1[q]), (q,)
        yield "rz", float(rz1[q]), (q,)
    for layer in range(ansatz.layers):
        sl = ansatz.layer_slices(layer)
        for (i, j), t in zip(ansatz.pairs, th[sl.rxx]):
            yield "rxx", float(t), (i, j)
        for q, (cz, dx) in enumerate(zip(th[sl.rz], th[sl.rx])):
            yield "rz", float(cz), (q,)
            yield "rx", float(dx), (q,)


def ansatz_to_qiskit(ansatz: Ansatz, theta: Any, measure: bool = False) -> QuantumCircuit:
    """QuantumCircuit of the ansatz with numeric angles; qubit q measured into clbit q when ``measure``."""
    n = ansatz.n
    qc = QuantumCircuit(n, n, name="qcbm") if measure else QuantumCircuit(n, name="qcbm")
    for name, angle, qubits in gate_sequence(ansatz, theta):
        getattr(qc, name)(angle, *qubits)
    if measure:
        qc.measure(range(n), range(n))
    return qc
