"""Export of the abstract ansatz (RX, RZ, RXX) to a qiskit QuantumCircuit (same bit order as the simulator)."""

from __future__ import annotations

from typing import Any

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


def ansatz_to_qiskit(ansatz: Ansatz, theta: Any, measure: bool = False) -> QuantumCircuit:
    """QuantumCircuit of the ansatz with numeric angles; qubit q measured into clbit q when ``measure``."""
    th = theta_to_numpy(ansatz, theta)
    n = ansatz.n
    qc = QuantumCircuit(n, n, name="qcbm") if measure else QuantumCircuit(n, name="qcbm")
    rx1, rz1 = th[ansatz.region1_rx], th[ansatz.region1_rz]
    for q in range(n):
        qc.rx(float(rx1[q]), q)
        qc.rz(float(rz1[q]), q)
    for layer in range(ansatz.layers):
        sl = ansatz.layer_slices(layer)
        for (i, j), t in zip(ansatz.pairs, th[sl.rxx]):
            qc.rxx(float(t), i, j)
        for q, (cz, dx) in enumerate(zip(th[sl.rz], th[sl.rx])):
            qc.rz(float(cz), q)
            qc.rx(float(dx), q)
    if measure:
        qc.measure(range(n), range(n))
    return qc
