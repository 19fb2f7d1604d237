"""Batched exact statevector simulator of the QCBM ansatz in torch (Eq. 4-5 of arXiv 2504.08728).

``probabilities(ansatz, thetas)`` maps parameter vectors (B, P) to Born probabilities (B, 2**n), bit q of the
index = qubit q (qiskit order). It runs on the device and in the precision of ``thetas`` (float32 -> complex64,
float64 -> complex128) and is differentiable by autograd.

How it works (all RXX gates of a layer commute and are diagonal in the X basis):

* The state is kept in the X basis, psi_X = H^{(x)n} psi. Region 1 acting on |0...0> is a product state, built
  directly as a Kronecker product of the n single-qubit vectors H RZ(b_q) RX(a_q) |0>.
* A layer's RXX block is the diagonal phase exp(-i/2 sum_{(i,j)} t_ij s_i s_j), s_i = 1 - 2 x_i in {+1,-1}; its
  angle vector (B, 2**n) is one matmul of the (B, |E|) angles with the (|E|, 2**n) parity signs s_i s_j (cached
  per ansatz) for small n; for large n the qubits are split in two halves and the cross terms are two matmuls.
* The single-qubit rotations of region 3 are one 2x2 matrix per qubit, with the basis changes folded in:
  G_q = H RX(d_q) RZ(c_q) H between layers and G_q = RX(d_q) RZ(c_q) H after the last one. They are applied
  in blocks of 3 qubits: the Kronecker product of a block's gates (B, 8, 8) times the state viewed as
  (B, 2**(n-3), 8), transposed, is one batched GEMM that also rotates the index by 3 bits, so ceil(n/3) GEMMs
  cover all qubits and restore the bit order.
* Complex elementwise products are done with real kernels (torch's CPU complex mul and polar are slow).

Cost per layer: O(B 2**n (|E| + 8 n/3)) (the |E| term only for small n; large n use two matmuls of cost
O(B 2**n n/2)); memory: a few complex (B, 2**n) tensors (more with autograd).
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

#: Use the cached (|E|, 2**n) sign matrix while it has at most this many entries; else the split build.
_SIGN_MATRIX_MAX_ENTRIES = 1 << 22

#: Qubits per Kronecker block when applying a layer's single-qubit gates (8x8 blocks were fastest on CPU for
#: n = 12 (B = 229), 20 and 24 against blocks of 2, 4 and 6 qubits).
_BLOCK = 3


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


def _signs(bits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(bits, 2**bits): s_i(x) = 1 - 2 * (bit i of x)."""
    idx = torch.arange(2**bits, device=device)
    return (1 - 2 * ((idx.unsqueeze(0) >> torch.arange(bits, device=device).unsqueeze(1)) & 1)).to(dtype)


def _sub_angles(pairs: list[tuple[int, int, int]], t: torch.Tensor, offset: int, bits: int) -> torch.Tensor:
    """sum over ``pairs`` (i, j, column) inside bits offset..offset+bits-1 of t_ij s_i s_j -> (B, 2**bits)."""
    if not pairs:
        return t.new_zeros(t.shape[0], 2**bits)
    s = _signs(bits, t.dtype, t.device)
    rows = torch.tensor([i - offset for i, _, _ in pairs], device=t.device)
    cols = torch.tensor([j - offset for _, j, _ in pairs], device=t.device)
    sel = torch.tensor([e for _, _, e in pairs], device=t.device)
    return t[:, sel] @ (s[rows] * s[cols])


def _pair_angles_split(ansatz: Ansatz, t: torch.Tensor) -> torch.Tensor:
    """sum_{(i,j)} t_ij s_i s_j as (B, 2**n) for large n without a (|E|, 2**n) sign matrix.

    Bits split into lo = 0..m-1 and hi = m..n-1: angle = A_hi(x_hi) + A_lo(x_lo) + S_hi^T T_cross^T S_lo, where
    A_* are the pairs inside a half (sign-matrix matmuls over 2**(n/2) states) and the cross term is two
    batched matmuls of total cost O(2**n * n/2).
    """
    n, b = ansatz.n, t.shape[0]
    m = n // 2
    lo_pairs, hi_pairs = [], []
    cross = t.new_zeros(b, m, n - m)
    cross_idx = [(i, j - m, e) for e, (i, j) in enumerate(ansatz.pairs) if i < m <= j]
    for e, (i, j) in enumerate(ansatz.pairs):
        if j < m:
            lo_pairs.append((i, j, e))
        elif i >= m:
            hi_pairs.append((i, j, e))
    if cross_idx:
        ci = torch.tensor([c[0] for c in cross_idx], device=t.device)
        cj = torch.tensor([c[1] for c in cross_idx], device=t.device)
        ce = torch.tensor([c[2] for c in cross_idx], device=t.device)
        cross = cross.index_put((torch.arange(b, device=t.device)[:, None], ci[None, :], cj[None, :]), t[:, ce])
    s_lo = _signs(m, t.dtype, t.device)  # (m, 2**m)
    s_hi = _signs(n - m, t.dtype, t.device)  # (n-m, 2**(n-m))
    c = s_hi.T @ (cross.transpose(1, 2) @ s_lo)  # (B, 2**(n-m), 2**m)
    a_lo = _sub_angles(lo_pairs, t, 0, m)
    a_hi = _sub_angles(hi_pairs, t, m, n - m)
    return (c + a_hi.unsqueeze(2) + a_lo.unsqueeze(1)).reshape(b, -1)


def _pair_angles(ansatz: Ansatz, t: torch.Tensor) -> torch.Tensor:
    """sum_{(i,j)} t_ij s_i s_j for the layer's RXX angles t (B, |E|) -> (B, 2**n)."""
    if ansatz.num_pairs == 0:
        return t.new_zeros(t.shape[0], 2**ansatz.n)
    if ansatz.num_pairs * 2**ansatz.n <= _SIGN_MATRIX_MAX_ENTRIES:
        return t @ _sign_matrix(ansatz, t.dtype, t.device)
    return _pair_angles_split(ansatz, t)


def _cmul(ar: torch.Tensor, ai: torch.Tensor, br: torch.Tensor, bi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ar + i ai)(br + i bi) on real tensors (torch's CPU complex kernels are several times slower)."""
    return torch.addcmul(ar * br, ai, bi, value=-1), torch.addcmul(ar * bi, ai, br)


def _cmul_c(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex product a * b (broadcasting) computed with real kernels (faster than torch's CPU complex mul)."""
    re, im = _cmul(a.real, a.imag, b.real, b.imag)
    return torch.complex(re, im)


def _kron_chain(gates: torch.Tensor) -> torch.Tensor:
    """gates (B, m, 2, 2) -> (B, 2**m, 2**m) = G_{m-1} (x) ... (x) G_0 (gate 0 acts on the least significant bit)."""
    b, m = gates.shape[:2]
    k = gates[:, 0]
    for q in range(1, m):
        d = 2**q
        k = _cmul_c(gates[:, q][:, :, None, :, None], k[:, None, :, None, :]).reshape(b, 2 * d, 2 * d)
    return k


def _kron_vec(v: torch.Tensor) -> torch.Tensor:
    """v (B, m, 2) -> (B, 2**m) = v_{m-1} (x) ... (x) v_0 (two halves, then one outer product)."""
    b, m = v.shape[:2]
    if m > 8:
        half = m // 2
        return _cmul_c(_kron_vec(v[:, half:]).unsqueeze(2), _kron_vec(v[:, :half]).unsqueeze(1)).reshape(b, -1)
    out = v[:, 0]
    for q in range(1, m):
        out = _cmul_c(v[:, q][:, :, None], out[:, None, :]).reshape(b, -1)
    return out


def _region1(ansatz: Ansatz, thetas: torch.Tensor, cdtype: torch.dtype, h: torch.Tensor) -> torch.Tensor:
    """(B, n, 2) complex: v_q = H RZ(b_q) RX(a_q)|0> = H [e^{-ib/2} cos(a/2), -i e^{ib/2} sin(a/2)]."""
    a = thetas[:, ansatz.region1_rx]
    bz = thetas[:, ansatz.region1_rz]
    ez = torch.polar(torch.ones_like(bz), -bz / 2)
    v = torch.stack((torch.cos(a / 2).to(cdtype) * ez, (-1j * torch.sin(a / 2)).to(cdtype) * ez.conj()), dim=-1)
    return v @ h.T


def _layer_gates(ansatz: Ansatz, thetas: torch.Tensor, layer: int, cdtype: torch.dtype, h: torch.Tensor):
    """(B, n, 2, 2): H RX RZ H between layers, RX RZ H after the last layer (RZ applied first)."""
    sl = ansatz.layer_slices(layer)
    u = _rx_rz(thetas[:, sl.rz], thetas[:, sl.rx], cdtype) @ h
    return h @ u if layer < ansatz.layers - 1 else u


def _apply_gates(m: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Apply gates (B, n, 2, 2) to every qubit of the complex state m (B, 2**n) in blocks of _BLOCK qubits.

    Per block of k qubits at the bottom of the index: K = G_{q+k-1} (x) ... (x) G_q (B, 2**k, 2**k) and
    m <- K @ m.view(B, 2**(n-k), 2**k)^T, one batched GEMM that also rotates the index by k bits (the block's
    bits move to the top), so the next block is at the bottom; after all blocks the order is restored.
    """
    b, size = m.shape
    n = gates.shape[1]
    q = 0
    while q < n:
        k = min(_BLOCK, n - q)
        kron = _kron_chain(gates[:, q : q + k])
        m = (kron @ m.view(b, size >> k, 1 << k).transpose(1, 2)).reshape(b, size)
        q += k
    return m


def _simulate(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Complex amplitudes (B, 2**n) of U(theta)|0...0>."""
    thetas = ansatz.check_thetas(thetas)
    if ansatz.n > MAX_QUBITS:
        raise ValueError(
            f"the torch simulator supports at most MAX_QUBITS = {MAX_QUBITS} qubits, got n = {ansatz.n}"
        )
    cdtype = _complex_dtype(thetas.dtype)
    h = _hadamard(cdtype, thetas.device)
    m = _kron_vec(_region1(ansatz, thetas, cdtype, h))  # X-basis state after region 1
    for layer in range(ansatz.layers):
        ang = _pair_angles(ansatz, thetas[:, ansatz.layer_slices(layer).rxx]) * -0.5  # phase exp(i ang)
        re, im = _cmul(m.real, m.imag, torch.cos(ang), torch.sin(ang))
        m = torch.complex(re, im)  # real kernels: torch's CPU complex mul and polar are slow
        m = _apply_gates(m, _layer_gates(ansatz, thetas, layer, cdtype, h))
    return m


def statevector(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Complex amplitudes (B, 2**n) of U(theta)|0...0> (Eq. 4), for thetas (B, P) or (P,)."""
    return _simulate(ansatz, thetas)


def probabilities(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Born probabilities p_theta(x) = |<x|U(theta)|0>|^2 (Eq. 5): thetas (B, P) or (P,) -> (B, 2**n).

    Real dtype and device follow ``thetas`` (float64 recommended for tests and finite differences);
    differentiable by autograd. Bit q of the index x is qubit q.
    """
    m = _simulate(ansatz, thetas)
    return torch.addcmul(m.real * m.real, m.imag, m.imag)
