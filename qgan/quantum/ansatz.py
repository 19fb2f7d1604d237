"""The QCBM ansatz of arXiv 2504.08728 (Fig. 1; spec.md §3).

Circuit, time order (qubit q is bit q of a basis index, qiskit's little-endian order)::

    region 1:           RX(a_q) then RZ(b_q) on every qubit q
    layer l = 1..L:     RXX(t_ij) on every pair (i, j) of the connectivity (region 2)
                        RZ(c_q) then RX(d_q) on every qubit q  (region 3)

Connectivity: ``"full"`` = all pairs i < j (|E| = n(n-1)/2, 66 at n = 12); ``"reduced"`` = pairs with
1 <= j - i <= 3 on an open line (|E| = 3n - 6 for n >= 3, 30 at n = 12). Pairs are in lexicographic order.

Parameter vector layout (length P = 2n + L(|E| + 2n); 114 at n = 12 full, 78 reduced, one layer)::

    theta[0      : n]          region-1 RX angle of qubit 0..n-1
    theta[n      : 2n]         region-1 RZ angle of qubit 0..n-1
    for layer l (offset o = 2n + l(|E| + 2n)):
    theta[o      : o+|E|]      RXX angle of pairs[0..|E|-1]
    theta[o+|E|  : o+|E|+n]    region-3 RZ angle of qubit 0..n-1
    theta[o+|E|+n: o+|E|+2n]   region-3 RX angle of qubit 0..n-1

All angles are in radians with the qiskit conventions RX(a) = exp(-i a X/2), RZ(a) = exp(-i a Z/2),
RXX(a) = exp(-i a X(x)X/2) (Eq. 11).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from qiskit import QuantumCircuit

CONNECTIVITIES = ("full", "reduced")


def connectivity_pairs(n: int, connectivity: str) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of the RXX gates in lexicographic order."""
    if connectivity == "full":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    if connectivity == "reduced":
        return [(i, j) for i in range(n) for j in range(i + 1, min(n, i + 4))]
    raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")


def _positive_int(value: Any, what: str) -> int:
    """value as a Python int >= 1 (numpy integers accepted); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be a positive integer, got {value!r}") from None
    if v < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return v


@dataclass(frozen=True)
class ParamSlices:
    """Index ranges of one layer's parameters (see the module docstring)."""

    rxx: slice
    rz: slice
    rx: slice


@dataclass(eq=False)
class Ansatz:
    """QCBM circuit of ``n`` qubits, ``layers`` entangling layers, ``connectivity`` "full" or "reduced".

    Attributes: ``n``, ``layers``, ``connectivity``, ``pairs`` (list of (i, j)), ``num_params`` (P).
    """

    n: int
    layers: int = 1
    connectivity: str = "full"
    pairs: list[tuple[int, int]] = field(init=False)
    _cache: dict = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.n = _positive_int(self.n, "number of qubits n")
        self.layers = _positive_int(self.layers, "layers")
        self.pairs = connectivity_pairs(self.n, self.connectivity)

    # ----------------------------------------------------------------- layout
    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    @property
    def num_params(self) -> int:
        """P = 2n + L(|E| + 2n)."""
        return 2 * self.n + self.layers * (self.num_pairs + 2 * self.n)

    @property
    def region1_rx(self) -> slice:
        return slice(0, self.n)

    @property
    def region1_rz(self) -> slice:
        return slice(self.n, 2 * self.n)

    def layer_slices(self, layer: int) -> ParamSlices:
        """Parameter index ranges of layer ``layer`` (0-based)."""
        if not 0 <= layer < self.layers:
            raise ValueError(f"layer must be in [0, {self.layers}), got {layer}")
        n, e = self.n, self.num_pairs
        o = 2 * n + layer * (e + 2 * n)
        return ParamSlices(slice(o, o + e), slice(o + e, o + e + n), slice(o + e + n, o + e + 2 * n))

    def num_two_qubit_gates(self) -> int:
        """Number of RXX (= MS after native compilation) gates: L * |E|."""
        return self.layers * self.num_pairs

    # --------------------------------------------------------- starting points
    def uniform_start(self) -> torch.Tensor:
        """float64 (P,): region-1 RX = pi/2, all else 0, so p(x) = 2**-n exactly (= Bernoulli(0.5)**n).

        After region 1 every qubit is RX(pi/2)|0> = (|0> - i|1>)/sqrt(2) and every later gate is the identity.
        """
        theta = torch.zeros(self.num_params, dtype=torch.float64)
        theta[self.region1_rx] = math.pi / 2
        return theta

    def random_start(self, generator: torch.Generator, low: float = -math.pi, high: float = math.pi) -> torch.Tensor:
        """float64 (P,) drawn uniformly from [low, high) with ``generator``."""
        u = torch.rand(self.num_params, generator=generator, dtype=torch.float64, device=generator.device)
        return (low + (high - low) * u).cpu()

    def perturbed_start(self, generator: torch.Generator, scale: float) -> torch.Tensor:
        """float64 (P,): ``uniform_start()`` plus N(0, scale**2) rad on every angle (spec.md §3 correction).

        At the exactly uniform start the loss is even in every RZ and RXX angle, so their gradients vanish and
        gradient descent never leaves the product-state manifold; the perturbation gives all P angles a
        gradient while keeping p_theta close to uniform (docs/train.md has the measured TV per scale)."""
        noise = torch.randn(self.num_params, generator=generator, dtype=torch.float64, device=generator.device)
        return self.uniform_start() + float(scale) * noise.cpu()

    def angle_groups(self) -> dict[str, torch.Tensor]:
        """Parameter indices (long) of each gate kind: "rx" (region 1 and every region 3), "rz", "rxx"."""
        rx, rz, rxx = [self.region1_rx], [self.region1_rz], []
        for layer in range(self.layers):
            s = self.layer_slices(layer)
            rx.append(s.rx)
            rz.append(s.rz)
            rxx.append(s.rxx)

        def cat(slices: list[slice]) -> torch.Tensor:
            return torch.cat([torch.arange(s.start, s.stop) for s in slices])

        return {"rx": cat(rx), "rz": cat(rz), "rxx": cat(rxx)}

    def probabilities(self, thetas: torch.Tensor) -> torch.Tensor:
        """Born probabilities (B, 2**n) of thetas (B, P) or (P,) (differentiable; `qgan.quantum.probabilities`)."""
        from qgan.quantum.simulator import probabilities

        return probabilities(self, thetas)

    def check_thetas(self, thetas: torch.Tensor) -> torch.Tensor:
        """Return thetas as (B, P); raise ValueError on a wrong shape."""
        return as_param_batch(thetas, self.num_params, f"thetas must have shape (P,) or (B, P) with "
                                                        f"P = {self.num_params} for {self!r}")

    # ------------------------------------------------------------- qiskit side
    def to_qiskit(self, theta: Any, measure: bool = False) -> "QuantumCircuit":
        """Abstract circuit (RX, RZ, RXX gates) as a qiskit QuantumCircuit with the same bit order.

        ``measure=False`` (default): no classical bits (use with ``Statevector``);
        ``measure=True``: n classical bits, qubit q measured into clbit q, so ``int(key, 2)`` of a count key
        is the basis index used by :func:`qgan.quantum.probabilities`.
        """
        from qgan.quantum.qiskit_export import ansatz_to_qiskit

        return ansatz_to_qiskit(self, theta, measure=measure)

    def to_native(self, theta: Any, measure: bool = True) -> "QuantumCircuit":
        """IonQ-native circuit (only qiskit_ionq GPIGate, GPI2Gate, MSGate; RZ virtual). See qgan.quantum.native."""
        from qgan.quantum.native import ansatz_to_native

        return ansatz_to_native(self, theta, measure=measure)

    def __repr__(self) -> str:
        return f"Ansatz(n={self.n}, layers={self.layers}, connectivity={self.connectivity!r})"


def as_param_batch(values, size: int, shape_error: str) -> torch.Tensor:
    """Parameters as a real (B, size) tensor ((size,) becomes (1, size)); ValueError `shape_error` + the shape
    seen on a wrong shape. Shared by the circuit's angles and the product prior's logits."""
    if not torch.is_tensor(values):
        values = torch.as_tensor(values, dtype=torch.float64)
    if values.dim() == 1:
        values = values.unsqueeze(0)
    if values.dim() != 2 or values.shape[1] != size:
        raise ValueError(f"{shape_error}, got {tuple(values.shape)}")
    if values.is_complex() or not values.is_floating_point():
        raise ValueError(f"parameters must be a real floating-point tensor, got {values.dtype}")
    return values
