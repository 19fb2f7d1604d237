"""An IonQ-Aria-2-like noise model for qiskit-aer on the native gates GPI, GPI2 and MS.

Default figures (IonQ Aria class, as published by IonQ through Microsoft's Azure Quantum provider page
https://learn.microsoft.com/azure/quantum/provider-ionq, "IonQ Aria quantum computer", section "System
fidelity" / "System timing"; the same page covers Aria 1 and Aria 2):

    single-qubit gate fidelity   99.95 %  (SPAM corrected)      -> 1q average gate error 5.0e-4
    two-qubit gate fidelity      99.6  %  (not SPAM corrected)  -> 2q average gate error 4.0e-3
    SPAM fidelity                99.61 %                        -> readout error 3.9e-3 (symmetric)
    T1 10-100 s, T2 1 s, 1q gate 135 us, 2q gate 600 us          (the gate times also in arXiv 2504.08728, ref 3)

Uncertain: these are fleet averages published for Aria, not a calibration of Aria-2 on the paper's dates
(IonQ's own characterisation endpoint gives per-day numbers that were not available here); the 2q figure
includes SPAM, so using it as a pure gate error slightly overstates gate noise; IonQ also reports
per-qubit/per-pair variation that is not modelled. Treat the model as "Aria-class", not as Aria-2 itself.

Model: a depolarising channel after every gate with parameter lambda = error * d / (d - 1) (qiskit's
``depolarizing_error`` parameter for average gate error ``error``, d = 2**qubits); a symmetric readout error;
optionally thermal relaxation over the gate time (off by default because the published fidelities already
include decoherence, and T1, T2 >> gate times make it a ~1e-4..6e-4 effect). Errors attach to the labels
'gpi', 'gpi2', 'ms' under which :func:`qgan.quantum.backends.run_aer` simulates the qiskit_ionq gates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Aria2Figures:
    """Error figures of the model (probabilities; times in seconds)."""

    error_1q: float = 5.0e-4  # average gate error of GPI / GPI2 (1 - 0.9995)
    error_2q: float = 4.0e-3  # average gate error of MS (1 - 0.996)
    readout_error: float = 3.9e-3  # P(1|0) = P(0|1) (1 - 0.9961)
    thermal_relaxation: bool = False  # add T1/T2 relaxation over the gate durations
    t1: float = 10.0  # s (lower end of the published 10-100 s)
    t2: float = 1.0  # s
    time_1q: float = 135e-6  # s
    time_2q: float = 600e-6  # s

    def validate(self) -> None:
        for name in ("error_1q", "error_2q", "readout_error"):
            v = getattr(self, name)
            if not 0.0 <= v < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5), got {v!r}")
        for name in ("t1", "t2", "time_1q", "time_2q"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.t2 > 2 * self.t1:
            raise ValueError(f"t2 must be <= 2 * t1, got t1={self.t1}, t2={self.t2}")


def aria2_figures(**overrides: Any) -> Aria2Figures:
    """Default figures with ``overrides`` (names of :class:`Aria2Figures`); ValueError on unknown names."""
    known = {f.name for f in fields(Aria2Figures)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown noise-model option(s) {unknown}; known: {sorted(known)}")
    figs = Aria2Figures(**{**asdict(Aria2Figures()), **overrides})
    figs.validate()
    return figs


def depolarizing_parameter(error: float, num_qubits: int) -> float:
    """qiskit depolarizing_error parameter giving average gate error ``error`` on ``num_qubits`` qubits."""
    d = 2**num_qubits
    return error * d / (d - 1)


def aria2_noise_model(**overrides: Any):
    """qiskit_aer NoiseModel with Aria-class errors on the native gates 'gpi', 'gpi2' and 'ms'.

    Keyword overrides: error_1q, error_2q, readout_error, thermal_relaxation, t1, t2, time_1q, time_2q.
    """
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error, thermal_relaxation_error

    f = aria2_figures(**overrides)
    model = NoiseModel(basis_gates=["unitary", "rx", "rz", "rxx", "u", "measure"])
    e1 = depolarizing_error(depolarizing_parameter(f.error_1q, 1), 1)
    e2 = depolarizing_error(depolarizing_parameter(f.error_2q, 2), 2)
    if f.thermal_relaxation:
        r1 = thermal_relaxation_error(f.t1, f.t2, f.time_1q)
        r2 = thermal_relaxation_error(f.t1, f.t2, f.time_2q)
        e1 = e1.compose(r1)
        e2 = e2.compose(r2.tensor(r2))
    model.add_all_qubit_quantum_error(e1, ["gpi", "gpi2"])
    model.add_all_qubit_quantum_error(e2, ["ms"])
    if f.readout_error > 0:
        p = f.readout_error
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    return model


def apply_readout_error(probs, readout_error: float):
    """Apply a symmetric per-bit readout error to probabilities (..., 2**n) (numpy or torch); same type out.

    Bit q of the index is flipped independently with probability ``readout_error``.
    """
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[-1]
    n = k.bit_length() - 1
    if 2**n != k:
        raise ValueError(f"last axis must have 2**n entries, got {k}")
    lead = p.shape[:-1]
    out = p.reshape(-1, k)
    e = float(readout_error)
    for q in range(n):
        v = out.reshape(-1, 2 ** (n - 1 - q), 2, 2**q)
        p0, p1 = v[:, :, 0, :], v[:, :, 1, :]
        out = np.stack(((1 - e) * p0 + e * p1, e * p0 + (1 - e) * p1), axis=2).reshape(-1, k)
    return out.reshape(*lead, k)


def noisy_probabilities(circuit, **overrides: Any):
    """Exact outcome distribution (2**n,) of a native circuit under ``aria2_noise_model(**overrides)``.

    Runs aer's density-matrix method (no shot noise; memory 16 * 4**n bytes, so n <= ~13) and applies the
    readout error analytically. Index order: bit q = qubit q. Used to quantify the effect of noise (total
    variation distance to the ideal distribution) without sampling error.
    """
    import numpy as np
    from qiskit_aer import AerSimulator

    from qgan.quantum.backends import _aer_ready

    f = aria2_figures(**overrides)
    gate_only = aria2_noise_model(**{**asdict(f), "readout_error": 0.0})
    qc = _aer_ready(circuit.remove_final_measurements(inplace=False))
    qc.save_probabilities(label="p")
    res = AerSimulator(method="density_matrix", noise_model=gate_only).run(qc, shots=1).result()
    p = np.asarray(res.data(0)["p"], dtype=np.float64)
    return apply_readout_error(p, f.readout_error) if f.readout_error > 0 else p
