"""Quantum core: QCBM ansatz, batched torch statevector simulator, sampling, qiskit export, native-gate
compilation (IonQ GPI/GPI2/MS), an Aria-2-like noise model and sampling backends (see docs/quantum.md).

Importing this package does not import qiskit; the qiskit side loads on first use.
"""

from qgan.quantum.ansatz import Ansatz, connectivity_pairs
from qgan.quantum.backends import AerBackend, Backend, ExactBackend, make_backend
from qgan.quantum.sampling import bits_to_indices, chain_rule_bits, indices_to_bits, inverse_cdf, sample_indices
from qgan.quantum.simulator import MAX_QUBITS, probabilities, statevector

__all__ = [
    "Ansatz",
    "connectivity_pairs",
    "probabilities",
    "statevector",
    "sample_indices",
    "inverse_cdf",
    "chain_rule_bits",
    "indices_to_bits",
    "bits_to_indices",
    "Backend",
    "ExactBackend",
    "AerBackend",
    "make_backend",
    "MAX_QUBITS",
]
