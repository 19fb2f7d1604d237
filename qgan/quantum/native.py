"""Compilation of the ansatz to IonQ native gates (spec.md §2 Eq. 12-15, §5.2): GPI, GPI2, MS only.

Conventions are those of the installed ``qiskit_ionq.ionq_gates`` (phases in turns, 1 turn = 2 pi rad)::

    GPI(p)  = [[0, e^{-2 pi i p}], [e^{2 pi i p}, 0]]                = sigma_p
    GPI2(p) = (I - i sigma_p) / sqrt(2)                               = RZ(2 pi p) RX(pi/2) RZ(-2 pi p)
    MS(p0, p1, t) = exp(-i pi t sigma_p0 (x) sigma_p1)  on (first, second) qubit argument,
    sigma_p = cos(2 pi p) X + sin(2 pi p) Y.

(qiskit-ionq writes the MS matrix in qiskit's little-endian order, IonQ's API page in big-endian order; both
are the same operator exp(-i pi t sigma_p0 (x) sigma_p1) on targets [q0, q1].)

Rules used:

* RXX(theta), theta wrapped to (-pi, pi] (a 2 pi shift is a global phase), is exactly ONE partially entangling
  MS with t in [0, 1/4] (the range IonQ accepts), plus a GPI(0) on both qubits when |theta| > pi/2:
      0 <= theta <= pi/2      -> MS(0, 0, theta / 2pi)
      -pi/2 <= theta < 0      -> MS(1/2, 0, |theta| / 2pi)                    (sigma_{1/2} = -X)
      pi/2 < theta <= pi      -> MS(1/2, 0, (pi - theta) / 2pi), then GPI(0) (x) GPI(0)
      -pi < theta < -pi/2     -> MS(0, 0, (pi + theta) / 2pi),   then GPI(0) (x) GPI(0)
  (RXX(theta) = RXX(+-pi) RXX(theta -+ pi) and RXX(+-pi) = -+i X (x) X.) No CNOTs.
* RX(a) = GPI2(1/4) . RZ(a) . GPI2(3/4)   (right factor first; GPI2(3/4) = RY(-pi/2), GPI2(1/4) = RY(pi/2)).
* RZ is virtual: every native gate g in {GPI, GPI2, MS} satisfies g(p) RZ(a) = RZ(a) g(p - a/2pi) on each of
  its qubits, so all RZ (including the GZ inside RX) are pushed to the end of the circuit by subtracting the
  accumulated frame angle of the qubit from the phase of every later gate, and dropped there (Z rotations
  before a Z-basis measurement do not change the outcome probabilities). No rz/gz gate remains.

Gate counts: L|E| MS (66 at n = 12 full, 30 reduced, one layer), 2n(L+1) GPI2, and 2 GPI per RXX with
|theta| > pi/2 (mod 2 pi).
"""

from __future__ import annotations

import math
from typing import Any

from qiskit import QuantumCircuit
from qiskit_ionq.ionq_gates import GPI2Gate, GPIGate, MSGate

from qgan.quantum.ansatz import Ansatz
from qgan.quantum.qiskit_export import gate_sequence

NATIVE_GATE_NAMES = ("gpi", "gpi2", "ms")
TWO_PI = 2.0 * math.pi


def rxx_to_ms(theta: float) -> tuple[float, float, float, bool]:
    """RXX(theta) -> (phi0, phi1, t, flip): MS(phi0, phi1, t) followed by GPI(0)(x)GPI(0) when ``flip``.

    Equal to RXX(theta) up to a global phase; t in [0, 0.25] (turns).
    """
    w = math.remainder(float(theta), TWO_PI)  # (-pi, pi]
    if w == -math.pi:
        w = math.pi
    half = math.pi / 2
    if 0.0 <= w <= half:
        return 0.0, 0.0, w / TWO_PI, False
    if -half <= w < 0.0:
        return 0.5, 0.0, -w / TWO_PI, False
    if w > half:
        return 0.5, 0.0, (math.pi - w) / TWO_PI, True
    return 0.0, 0.0, (math.pi + w) / TWO_PI, True


class _NativeBuilder:
    """Emits native gates while tracking the virtual-Z frame of each qubit (in turns)."""

    def __init__(self, n: int, measure: bool) -> None:
        self.qc = QuantumCircuit(n, n, name="qcbm_native") if measure else QuantumCircuit(n, name="qcbm_native")
        self.frame = [0.0] * n

    def _phase(self, p: float, q: int) -> float:
        return (p - self.frame[q]) % 1.0

    def rz(self, a: float, q: int) -> None:
        self.frame[q] += a / TWO_PI

    def gpi(self, p: float, q: int) -> None:
        self.qc.append(GPIGate(self._phase(p, q)), [q])

    def gpi2(self, p: float, q: int) -> None:
        self.qc.append(GPI2Gate(self._phase(p, q)), [q])

    def rx(self, a: float, q: int) -> None:
        self.gpi2(0.75, q)
        self.rz(a, q)
        self.gpi2(0.25, q)

    def rxx(self, theta: float, i: int, j: int) -> None:
        p0, p1, t, flip = rxx_to_ms(theta)
        self.qc.append(MSGate(self._phase(p0, i), self._phase(p1, j), t), [i, j])
        if flip:
            self.gpi(0.0, i)
            self.gpi(0.0, j)


def ansatz_to_native(ansatz: Ansatz, theta: Any, measure: bool = True) -> QuantumCircuit:
    """Native circuit of the ansatz: only qiskit_ionq GPIGate, GPI2Gate, MSGate (+ measurements).

    Same probabilities as :meth:`Ansatz.to_qiskit` (the final RZ frame is dropped, so the *state* differs by
    single-qubit Z rotations); qubit q measured into clbit q when ``measure``. Submittable to qiskit-ionq
    backends created with ``gateset="native"``.
    """
    b = _NativeBuilder(ansatz.n, measure)
    for name, angle, qubits in gate_sequence(ansatz, theta):
        getattr(b, name)(angle, *qubits)
    if measure:
        b.qc.measure(range(ansatz.n), range(ansatz.n))
    return b.qc


def native_gate_counts(circuit: QuantumCircuit) -> dict[str, int]:
    """Counts of each operation name in ``circuit`` (e.g. {'ms': 66, 'gpi2': 48, 'measure': 12})."""
    return dict(circuit.count_ops())
