"""Sampling backends with one interface: ``exact`` (torch), ``aer`` / ``aer-noisy`` (qiskit-aer), ``ionq``.

``Backend.sample(ansatz, thetas (B, P), shots, generator) -> long (B, shots)`` returns basis indices (bit q =
qubit q = latent component q) on the device of ``thetas``; ``circuit_calls`` counts parameter vectors run.
qiskit and qiskit-aer are imported only when an aer backend or :func:`run_aer` is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from qgan.quantum.ansatz import Ansatz
from qgan.quantum.sampling import inverse_cdf
from qgan.quantum.simulator import probability_chunks

BACKEND_NAMES = ("exact", "aer", "aer-noisy", "ionq")


class Backend:
    """Base class: subclasses implement ``_sample(ansatz, thetas (B, P) float64 CPU/any, shots, generator)``."""

    name: str = "backend"
    #: True when sampling is cheap enough to draw fresh latents from the circuit every epoch (simulators);
    #: False for hardware, the QPU gateway and per-shot noisy emulation, whose latents come from a pool of the
    #: last circuit run's bitstrings (as in the paper's QPU runs).
    fresh_latents: bool = False

    def __init__(self) -> None:
        self.circuit_calls = 0

    def sample(self, ansatz: Ansatz, thetas: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
        """Basis indices long (B, shots) for thetas (B, P) or (P,) (then B = 1); adds B to ``circuit_calls``."""
        thetas = ansatz.check_thetas(thetas)
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        out = self._sample(ansatz, thetas, shots, generator)
        self.circuit_calls += int(thetas.shape[0])
        return out.to(thetas.device)

    def _sample(self, ansatz: Ansatz, thetas: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, circuit_calls={self.circuit_calls})"


class ExactBackend(Backend):
    """Exact Born probabilities from the torch simulator, sampled by inverse CDF.

    ``device``/``dtype``: where and in which precision the simulation runs (default: the device and dtype of
    ``thetas`` for ``probabilities``, which the exact-gradient optimiser differentiates); samples are returned on
    the device of ``thetas``. ``sample_dtype``: the simulation precision of ``sample`` when ``dtype`` is not
    given (default float32): a shot estimate has relative noise ~1/sqrt(shots) (3 % at 1000 shots) while float32
    amplitudes are exact to ~1e-7, and the inverse CDF itself runs in float64, so with the same uniforms a draw
    moves to a neighbouring index only when a uniform lies within ~1e-7 of a CDF boundary (measured: 5e-5 of draws
    at n = 12); float32 simulation is 1.7x faster on CPU (benchmarks/bench_quantum.py).
    """

    name = "exact"
    fresh_latents = True

    def __init__(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 sample_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.sample_dtype = sample_dtype

    def probabilities(self, ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
        """(B, 2**n) exact probabilities on this backend's device/dtype (differentiable); `ansatz` is any prior
        model with `check_thetas` and `probabilities` (the QCBM `Ansatz`, `qgan.prior.ProductPrior`)."""
        thetas = ansatz.check_thetas(thetas)
        return ansatz.probabilities(thetas.to(device=self.device or thetas.device, dtype=self.dtype or thetas.dtype))

    def _sample(self, ansatz: Ansatz, thetas: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
        """Same draws as ``sample_indices(self.probabilities(ansatz, thetas), shots, generator)``, but each
        cache-sized chunk of rows is sampled right after it is simulated (no (B, 2**n) probability tensor)."""
        th = thetas.detach().to(device=self.device or thetas.device, dtype=self.dtype or self.sample_dtype)
        u = torch.rand((th.shape[0], shots), generator=generator, dtype=torch.float64, device=generator.device)
        u = u.to(th.device)
        out = torch.empty((th.shape[0], shots), dtype=torch.long, device=th.device)
        with torch.no_grad():
            for rows, probs in probability_chunks(ansatz, th):
                out[rows] = inverse_cdf(probs, u[rows])
        return out


# ----------------------------------------------------------------------------------------------- qiskit-aer
def _aer_ready(circuit):
    """Replace qiskit_ionq native gates by labelled unitaries ('gpi', 'gpi2', 'ms') that aer simulates and to
    which a NoiseModel attaches errors by label; other instructions pass unchanged."""
    from qiskit.circuit.library import UnitaryGate

    from qgan.quantum.native import NATIVE_GATE_NAMES

    if not any(ins.operation.name in NATIVE_GATE_NAMES for ins in circuit.data):
        return circuit
    out = circuit.copy_empty_like()
    cache: dict[tuple, Any] = {}
    for ins in circuit.data:
        op = ins.operation
        if op.name in NATIVE_GATE_NAMES:
            key = (op.name, tuple(float(p) for p in op.params))
            gate = cache.get(key)
            if gate is None:
                gate = UnitaryGate(np.asarray(op, dtype=complex), label=op.name, check_input=False)
                cache[key] = gate
            out.append(gate, ins.qubits, ins.clbits)
        else:
            out.append(op, ins.qubits, ins.clbits)
    return out


def run_aer(circuits: list, shots: int, seed: int | None = None, noise_model=None) -> list[dict[str, int]]:
    """Run measured circuits on qiskit-aer; one qiskit count dict per circuit (keys: clbit n-1 ... clbit 0).

    Circuits may contain qiskit_ionq GPI/GPI2/MS gates (simulated as their exact unitaries; a noise model from
    :func:`qgan.quantum.noise.aria2_noise_model` attaches its errors to them). ``seed`` makes the run
    reproducible (aer seeds circuit k with seed + k). Aer's statevector method is used: exact sampling from
    the final state for ideal circuits, one noisy trajectory per shot with a noise model (about 10 ms per
    shot at n = 12 full on a busy 2-core machine; use ``noise.noisy_probabilities`` for exact noisy
    distributions at small n).
    """
    from qiskit_aer import AerSimulator

    if not isinstance(circuits, (list, tuple)):
        circuits = [circuits]
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    if not circuits:
        return []
    prepared = [_aer_ready(c) for c in circuits]
    for c in prepared:
        if c.num_clbits == 0:
            raise ValueError(f"circuit {c.name!r} has no measurements; use to_qiskit(theta, measure=True)")
    sim = AerSimulator(noise_model=noise_model, method="statevector")
    opts: dict[str, Any] = {"shots": shots}
    if seed is not None:
        opts["seed_simulator"] = int(seed)
    result = sim.run(prepared, **opts).result()
    return [dict(result.get_counts(k)) for k in range(len(prepared))]


def counts_to_indices(counts: dict[str, int], shots: int, generator: torch.Generator) -> torch.Tensor:
    """Count dict -> long (shots,) basis indices in a random order drawn from ``generator``."""
    keys = np.array([int(k.replace(" ", ""), 2) for k in counts], dtype=np.int64)
    reps = np.array(list(counts.values()), dtype=np.int64)
    idx = torch.from_numpy(np.repeat(keys, reps))
    if idx.numel() != shots:
        raise ValueError(f"counts hold {idx.numel()} shots, expected {shots}")
    perm = torch.randperm(shots, generator=generator, device=generator.device).cpu()
    return idx[perm]


class AerBackend(Backend):
    """qiskit-aer sampling: ideal on the abstract circuit, or on the native circuit with a noise model.

    ``noise_model``: a qiskit-aer NoiseModel (e.g. ``aria2_noise_model()``) or None (ideal);
    ``native``: run ``Ansatz.to_native`` circuits (default: True when a noise model is given).
    Aer seeds are drawn from the ``generator`` passed to ``sample``; all B circuits go in one aer run.
    """

    def __init__(self, noise_model=None, native: bool | None = None, name: str | None = None) -> None:
        super().__init__()
        self.noise_model = noise_model
        self.native = (noise_model is not None) if native is None else bool(native)
        self.name = name or ("aer-noisy" if noise_model is not None else "aer")
        self.fresh_latents = noise_model is None  # a noisy run is one trajectory per shot: too slow per epoch

    def circuits(self, ansatz: Ansatz, thetas: torch.Tensor) -> list:
        thetas = ansatz.check_thetas(thetas).detach().cpu().to(torch.float64).numpy()
        if self.native:
            return [ansatz.to_native(t, measure=True) for t in thetas]
        return [ansatz.to_qiskit(t, measure=True) for t in thetas]

    def _sample(self, ansatz: Ansatz, thetas: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
        counts = run_aer(self.circuits(ansatz, thetas), shots, seed=seed, noise_model=self.noise_model)
        return torch.stack([counts_to_indices(c, shots, generator) for c in counts])


def make_backend(name: str, **options: Any) -> Backend:
    """Backend by name: "exact" (ExactBackend(**options)), "aer" (ideal AerBackend), "aer-noisy" (AerBackend
    with ``aria2_noise_model(**options)`` on native circuits), "ionq" (qgan.ionq.IonQBackend(**options), imported
    on use)."""
    if name == "exact":
        return ExactBackend(**options)
    if name == "aer":
        return AerBackend(**options)
    if name == "aer-noisy":
        from qgan.quantum.noise import aria2_noise_model

        native = options.pop("native", True)
        return AerBackend(noise_model=aria2_noise_model(**options), native=native, name="aer-noisy")
    if name == "ionq":
        from qgan.ionq import IonQBackend

        return IonQBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
