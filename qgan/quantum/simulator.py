"""Batched exact statevector simulator of the QCBM ansatz in torch (Eq. 4-5 of arXiv 2504.08728).

``probabilities(ansatz, thetas)`` maps parameter vectors (B, P) to Born probabilities (B, 2**n), bit q of the
index = qubit q (qiskit order). It runs on the device and in the precision of ``thetas`` (float32 -> complex64,
float64 -> complex128) and is differentiable by autograd.

How it works (all RXX gates of a layer commute and are diagonal in the X basis):

* The state is kept in the X basis, psi_X = H^{(x)n} psi. Region 1 acting on |0...0> is a product state, built
  directly as a Kronecker product of the n single-qubit vectors H RZ(b_q) RX(a_q) |0>.
* A layer's RXX block is the diagonal phase exp(-i/2 sum_{(i,j)} t_ij s_i s_j), s_i = 1 - 2 x_i in {+1,-1}; its
  angle vector (B, 2**n) is one matmul of the (B, |E|) angles with the (|E|, 2**n) parity signs s_i s_j (cached
  per ansatz) for small n, or for large n a recursive build in O(n 2**n) memory traffic without the sign matrix.
* The single-qubit rotations of region 3 are one 2x2 matrix per qubit, with the basis changes folded in:
  G_q = H RX(d_q) RZ(c_q) H between layers and G_q = RX(d_q) RZ(c_q) H after the last one; each is applied to
  its qubit axis of the state viewed as (B, 2**(n-1-q), 2, 2**q) for all B at once (n vectorised steps).

Cost per layer: O(B (|E| + 6n) 2**n); memory: a few complex (B, 2**n) tensors (more with autograd).
"""

from __future__ import annotations

import math

import torch

from qgan.quantum.ansatz import Ansatz

#: Largest n this simulator accepts. One complex64 state of 2**26 amplitudes is 512 MiB (complex128: 1 GiB);
#: a forward pass holds about three such tensors plus the (B, 2**n) phase angles, so B = 1 at n = 26 needs
#: ~2-4 GiB and fits a laptop or one GPU, while n = 28 would need 4x more (8-16 GiB per parameter vector,
#: and several times that with autograd). Sampling beyond 2**24 categories is supported (see sampling.py).
MAX_QUBITS = 26

#: Use the cached (|E|, 2**n) sign matrix while it has at most this many entries; else the recursive build.
_SIGN_MATRIX_MAX_ENTRIES = 1 << 22


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype == torch.float64:
        return torch.complex128
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.complex64
    raise ValueError(f"thetas must be float32 or float64, got {dtype}")


def _hadamard(cdtype: torch.dtype, device: torch.device) -> torch.Tensor:
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2.0)
    return h.to(device=device, dtype=cdtype)


def _rx_rz(rz: torch.Tensor, rx: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """RX(rx) @ RZ(rz) for angle tensors (...,) -> (..., 2, 2) complex (RZ applied first)."""
    c = torch.cos(rx / 2)
    s = torch.sin(rx / 2)
    ez = torch.polar(torch.ones_like(rz), -rz / 2)  # e^{-i rz/2}
    ezc = ez.conj()
    c = c.to(cdtype)
    ms = (-1j * s).to(cdtype)
    row0 = torch.stack((c * ez, ms * ezc), dim=-1)
    row1 = torch.stack((ms * ez, c * ezc), dim=-1)
    return torch.stack((row0, row1), dim=-2)


def _sign_matrix(ansatz: Ansatz, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(|E|, 2**n) real: s_i(x) s_j(x) for each pair, s = 1 - 2 * bit; cached on the ansatz."""
    key = ("signs", dtype, str(device))
    m = ansatz._cache.get(key)
    if m is None:
        idx = torch.arange(2**ansatz.n, device=device)
        bits = (idx.unsqueeze(0) >> torch.arange(ansatz.n, device=device).unsqueeze(1)) & 1  # (n, 2**n)
        s = (1 - 2 * bits).to(dtype)
        i = torch.tensor([p[0] for p in ansatz.pairs], dtype=torch.long, device=device)
        j = torch.tensor([p[1] for p in ansatz.pairs], dtype=torch.long, device=device)
        m = s[i] * s[j]
        ansatz._cache[key] = m
    return m


def _pair_angles_recursive(ansatz: Ansatz, t: torch.Tensor) -> torch.Tensor:
    """sum_{(i,j)} t_ij s_i s_j as (B, 2**n) without the sign matrix (large n), O(n 2**n) work at most.

    Built bit by bit: with A_k over the first k bits and L_k(x_<k) = sum_{(i,k) in E} t_ik s_i,
    A_{k+1} = cat(A_k + L_k, A_k - L_k) (new bit k = most significant; s_k = +1 for bit 0). L_k is a sum of
    |E_k| broadcast terms, so "reduced" connectivity costs O(2**n) per bit, not O(k 2**k).
    """
    n = ansatz.n
    b = t.shape[0]
    sign = t.new_tensor([1.0, -1.0]).view(1, 1, 2, 1)
    edges_to: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for e, (i, j) in enumerate(ansatz.pairs):
        edges_to[j].append((i, e))
    a = t.new_zeros(b, 1)
    for k in range(n):
        lin = t.new_zeros(b, 2**k)
        for i, e in edges_to[k]:
            term = t[:, e].view(b, 1, 1, 1) * sign
            lin = (lin.view(b, 2 ** (k - 1 - i), 2, 2**i) + term).reshape(b, 2**k)
        a = torch.cat((a + lin, a - lin), dim=1)
    return a


def _pair_angles(ansatz: Ansatz, t: torch.Tensor) -> torch.Tensor:
    if ansatz.num_pairs == 0:
        return t.new_zeros(t.shape[0], 2**ansatz.n)
    if ansatz.num_pairs * 2**ansatz.n <= _SIGN_MATRIX_MAX_ENTRIES:
        return t @ _sign_matrix(ansatz, t.dtype, t.device)
    return _pair_angles_recursive(ansatz, t)


def _apply_1q(state: torch.Tensor, gates: torch.Tensor, n: int) -> torch.Tensor:
    """Apply gates (B, n, 2, 2) to every qubit of state (B, 2**n); qubit q = bit q of the index."""
    b = state.shape[0]
    for q in range(n):
        s = state.view(b, 2 ** (n - 1 - q), 2, 2**q)
        s0 = s[:, :, 0, :]
        s1 = s[:, :, 1, :]
        g = gates[:, q].reshape(b, 4, 1, 1)
        state = torch.stack((g[:, 0] * s0 + g[:, 1] * s1, g[:, 2] * s0 + g[:, 3] * s1), dim=2).reshape(b, -1)
    return state


def statevector(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Complex amplitudes (B, 2**n) of U(theta)|0...0> (Eq. 4), for thetas (B, P) or (P,)."""
    thetas = ansatz.check_thetas(thetas)
    n = ansatz.n
    if n > MAX_QUBITS:
        raise ValueError(f"the torch simulator supports at most MAX_QUBITS = {MAX_QUBITS} qubits, got n = {n}")
    cdtype = _complex_dtype(thetas.dtype)
    b = thetas.shape[0]
    h = _hadamard(cdtype, thetas.device)

    # Region 1 on |0>: v_q = H RZ(b_q) RX(a_q) |0> = H [e^{-ib/2} cos(a/2), -i e^{ib/2} sin(a/2)].
    a = thetas[:, ansatz.region1_rx]
    bz = thetas[:, ansatz.region1_rz]
    ez = torch.polar(torch.ones_like(bz), -bz / 2)
    v = torch.stack((torch.cos(a / 2).to(cdtype) * ez, (-1j * torch.sin(a / 2)).to(cdtype) * ez.conj()), dim=-1)
    v = v @ h.T  # (B, n, 2): H v for each qubit
    state = v[:, 0, :]
    for q in range(1, n):  # qubit q becomes the most significant bit so far
        state = (v[:, q, :].unsqueeze(2) * state.unsqueeze(1)).reshape(b, -1)

    for layer in range(ansatz.layers):
        sl = ansatz.layer_slices(layer)
        ang = _pair_angles(ansatz, thetas[:, sl.rxx])  # (B, 2**n)
        state = state * torch.polar(torch.ones_like(ang), -ang / 2)
        u = _rx_rz(thetas[:, sl.rz], thetas[:, sl.rx], cdtype) @ h  # (B, n, 2, 2): U_q H
        if layer < ansatz.layers - 1:
            u = h @ u  # stay in the X basis for the next layer
        state = _apply_1q(state, u, n)
    return state


def probabilities(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Born probabilities p_theta(x) = |<x|U(theta)|0>|^2 (Eq. 5): thetas (B, P) or (P,) -> (B, 2**n).

    Real dtype and device follow ``thetas`` (float64 recommended for tests and finite differences);
    differentiable by autograd. Bit q of the index x is qubit q.
    """
    psi = statevector(ansatz, thetas)
    return psi.real.square() + psi.imag.square()
