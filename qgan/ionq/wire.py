"""The IonQ wire format: native-gate qiskit circuits <-> IonQ ``input.circuit`` JSON, their hashes, gate counts and
estimated QPU time, and the API's probability histograms -> shot counts -> sampled basis indices.

Bit q of a basis index is qubit q, in both directions.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from qgan.ionq.qiskit_thread import qiskit_call

# Aria-2 gate durations [R-paper, ref 3]: 1-qubit 135 us, 2-qubit 600 us.
GATE_TIME_1Q_S = 135e-6
GATE_TIME_2Q_S = 600e-6
ONE_QUBIT_GATES = {"gpi", "gpi2", "gz", "x", "y", "z", "h", "rx", "ry", "rz", "s", "si", "t", "ti", "v", "vi", "not"}
TWO_QUBIT_GATES = {"ms", "zz", "cnot", "cx", "xx", "yy", "swap"}


def circuit_to_ionq_json(circuit) -> tuple[list[dict], int]:
    """A native-gate qiskit circuit -> (IonQ ``input.circuit`` instruction list, qubit count).

    Uses qiskit-ionq's own serializer, so the JSON is exactly what the client would send.
    """
    from qiskit_ionq.helpers import qiskit_circ_to_ionq_circ

    instructions, _, _ = qiskit_call(qiskit_circ_to_ionq_circ, circuit, "native")
    instructions = json.loads(json.dumps(instructions, default=float))
    return instructions, int(circuit.num_qubits)


def circuit_hash(instructions: list[dict], qubits: int, shots: int) -> str:
    """A stable sha256 over the IonQ JSON of a circuit, its width and its shot count (angles to 12 digits)."""

    def norm(x):
        if isinstance(x, float):
            return round(x, 12)
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, dict):
            return {k: norm(v) for k, v in sorted(x.items())}
        return x

    blob = json.dumps({"c": norm(instructions), "q": int(qubits), "s": int(shots)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def gate_counts(instructions: list[dict]) -> tuple[int, int]:
    """(1-qubit, 2-qubit) gate counts of an IonQ instruction list."""
    n1 = n2 = 0
    for ins in instructions:
        g = ins.get("gate")
        if g in TWO_QUBIT_GATES or len(ins.get("targets", [])) + len(ins.get("controls", [])) >= 2:
            n2 += 1
        else:
            n1 += 1
    return n1, n2


def qpu_seconds(n1q: int, n2q: int, shots: int) -> float:
    """Estimated QPU gate time (s) of one circuit: shots x (n1q x 135 us + n2q x 600 us) (Aria-2 gate times)."""
    return float(shots) * (n1q * GATE_TIME_1Q_S + n2q * GATE_TIME_2Q_S)


def circuit_from_ionq_json(instructions: list[dict], qubits: int, measure: bool = True):
    """IonQ instruction list -> qiskit QuantumCircuit (built on the qiskit thread; see `_circuit_from_ionq_json`)."""
    return qiskit_call(_circuit_from_ionq_json, instructions, qubits, measure)


def _circuit_from_ionq_json(instructions: list[dict], qubits: int, measure: bool = True):
    """IonQ instruction list -> qiskit QuantumCircuit (native gates as qiskit_ionq GPI/GPI2/MS/ZZ gates).

    Native phases are in turns; ``gz``/``rz`` angles in radians. A small QIS subset (x, y, z, h, rx, ry, rz, s, si,
    t, ti, v, vi, not/cnot/cx, xx/yy/zz, swap) is accepted too. Raises ValueError on anything else. With
    `measure`, qubit q is measured into clbit q.
    """
    from qiskit import QuantumCircuit
    from qiskit_ionq import GPI2Gate, GPIGate, MSGate, ZZGate

    if not isinstance(qubits, int) or qubits < 1 or qubits > 36:
        raise ValueError(f"bad qubit count {qubits!r}")
    qc = QuantumCircuit(qubits, qubits if measure else 0)

    def q(i):
        if not isinstance(i, int) or not 0 <= i < qubits:
            raise ValueError(f"qubit index {i!r} out of range for {qubits} qubits")
        return i

    for k, ins in enumerate(instructions):
        if not isinstance(ins, dict) or "gate" not in ins:
            raise ValueError(f"instruction {k} is not an object with a 'gate'")
        g = ins["gate"]
        targets = ins.get("targets")
        if targets is None and "target" in ins:
            targets = [ins["target"]]
        targets = [q(t) for t in (targets or [])]
        controls = [q(c) for c in ins.get("controls", [])]
        if not targets:
            raise ValueError(f"instruction {k} ({g}) has no target")
        if g == "gpi":
            qc.append(GPIGate(float(ins["phase"])), [targets[0]])
        elif g == "gpi2":
            qc.append(GPI2Gate(float(ins["phase"])), [targets[0]])
        elif g == "gz":
            qc.rz(2 * math.pi * float(ins.get("phase", 0.0)), targets[0])
        elif g == "ms":
            if len(targets) != 2:
                raise ValueError(f"instruction {k}: ms needs two targets")
            phases = ins.get("phases", [0.0, 0.0])
            angle = float(ins.get("angle", 0.25))
            if not 0.0 <= angle <= 0.25 + 1e-12:
                raise ValueError(f"instruction {k}: ms angle {angle} outside [0, 0.25]")
            qc.append(MSGate(float(phases[0]), float(phases[1]), angle), targets)
        elif g == "zz":
            qc.append(ZZGate(float(ins["angle"])), targets)
        elif g in ("x", "y", "z", "h", "s", "t") and not controls:
            getattr(qc, g)(targets[0])
        elif g in ("si", "ti"):
            (qc.sdg if g == "si" else qc.tdg)(targets[0])
        elif g in ("v", "vi"):
            (qc.sx if g == "v" else qc.sxdg)(targets[0])
        elif g in ("rx", "ry", "rz"):
            getattr(qc, g)(float(ins["rotation"]), targets[0])
        elif g in ("not", "cnot", "cx", "x") and controls:
            qc.mcx(controls, targets[0])
        elif g in ("xx", "yy") or (g == "zz" and "rotation" in ins):
            getattr(qc, "r" + g)(float(ins["rotation"]), targets[0], targets[1])
        elif g == "swap":
            qc.swap(targets[0], targets[1])
        else:
            raise ValueError(f"instruction {k}: unsupported gate {g!r}")
    if measure:
        qc.measure(range(qubits), range(qubits))
    return qc


def counts_from_probabilities(probs: dict, shots: int) -> dict[int, int]:
    """API histogram ``{"<index>": p}`` -> ``{index: count}`` with counts summing to `shots` (largest remainder)."""
    if not probs:
        return {}
    keys = [int(k) for k in probs]
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    p = p / p.sum()
    raw = p * shots
    base = np.floor(raw + 1e-9).astype(np.int64)
    short = int(shots - base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    return {k: int(c) for k, c in zip(keys, base) if c > 0}


def expand_counts(counts: dict[int, int], shots: int, generator) -> "torch.Tensor":
    """``{index: count}`` -> torch.long (shots,) basis indices in a random order drawn from `generator`."""
    import torch

    if sum(counts.values()) != shots:
        raise ValueError(f"counts sum to {sum(counts.values())}, expected {shots} shots")
    keys = torch.tensor(sorted(counts), dtype=torch.long)
    reps = torch.tensor([counts[int(k)] for k in keys], dtype=torch.long)
    idx = torch.repeat_interleave(keys, reps)
    perm = torch.randperm(shots, generator=generator)
    return idx[perm]
