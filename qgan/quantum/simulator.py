"""Batched exact statevector simulator of the QCBM ansatz in torch (Eq. 4-5 of arXiv 2504.08728).

``probabilities(ansatz, thetas)`` maps parameter vectors (B, P) to Born probabilities (B, 2**n), bit q of the
index = qubit q (qiskit order). It runs on the device and in the precision of ``thetas`` (float64, or float32
for float32/16) and is differentiable by autograd.

How it works (all RXX gates of a layer commute and are diagonal in the X basis). All arithmetic is real: the
state is carried as real and imaginary parts (torch's CPU complex kernels are several times slower).

* The state is kept in the X basis, psi_X = H^{(x)n} psi. Region 1 acting on |0...0> is a product state: the
  outer product of the Kronecker vectors of the low (m = n // 2) and high qubits' vectors H RZ(b_q) RX(a_q)|0>.
* A layer's RXX block is the diagonal phase exp(-i/2 sum_{(i,j)} t_ij s_i s_j), s_i = 1 - 2 x_i in {+1,-1}.
  Split build: angle = A_hi(x_hi) + A_lo(x_lo) + C(x_hi, x_lo) with the cross term C = S_hi^T T^T S_lo (two
  small GEMMs, O(B 2**n m)). In layer 0, A_lo and A_hi are folded into the half vectors, so only C needs
  cos/sin over all 2**n states (without autograd in polar form: |h||l| exp(i(C + arg h + arg l))). Small n
  (<= _SIGN_MATRIX_MAX_ENTRIES sign entries) uses one matmul with the cached (|E|, 2**n) pair-sign matrix.
* The single-qubit rotations of region 3 are one 2x2 matrix per qubit, with the basis changes folded in:
  G_q = H RX(d_q) RZ(c_q) H between layers and G_q = RX(d_q) RZ(c_q) H after the last one. They are applied
  in blocks of 3 qubits: with K = Kr + i Ki the block's Kronecker product (B, 8, 8), [Re; Im] <- [[Kr],[Ki]] @
  Xr + [[-Ki],[Kr]] @ Xi, X the state viewed as (B, 2**(n-3), 8) transposed: two real batched GEMMs that also
  rotate the index by 3 bits, so ceil(n/3) blocks cover all qubits and restore the bit order.
* The small per-vector tensors are built once for the batch; the 2**n-sized work runs in row chunks of
  ~_CHUNK_ELEMENTS amplitudes so intermediates stay in cache and are recycled by the allocator.

Cost per layer: O(B 2**n (n + 16 n/3)) flops (+ O(B 2**n |E|) for small n and later layers' sign matmul);
memory: a few real (b, 2**n) tensors per chunk (more with autograd, which keeps every chunk's graph).
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
_SIGN_MATRIX_MAX_ENTRIES = 1 << 12

#: Qubits per Kronecker block when applying a layer's single-qubit gates (8x8 blocks were fastest on CPU for
#: n = 12 (B = 229), 20 and 24 against blocks of 2, 4 and 6 qubits).
_BLOCK = 3

#: Amplitudes per row chunk: a batch (B, P) is simulated in chunks of max(1, _CHUNK_ELEMENTS // 2**n) rows so
#: that the intermediates of one chunk (a few real (b, 2**n) tensors) stay in the L2 cache and are recycled
#: by the allocator instead of being fresh page-faulting allocations (page faults dominated float64 at
#: n = 12, B = 229 on the 2-core VM: ~1300 faults of ~3.5 us per fresh 7.5 MB tensor).
_CHUNK_ELEMENTS = 1 << 16


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Real dtype the simulation runs in: float64 for float64 thetas, float32 for float32/16/bfloat16."""
    if dtype == torch.float64:
        return torch.float64
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    raise ValueError(f"thetas must be float32 or float64, got {dtype}")


def _signs(bits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(bits, 2**bits): s_i(x) = 1 - 2 * (bit i of x)."""
    idx = torch.arange(2**bits, device=device)
    return (1 - 2 * ((idx.unsqueeze(0) >> torch.arange(bits, device=device).unsqueeze(1)) & 1)).to(dtype)


def _sign_matrix(ansatz: Ansatz, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(|E|, 2**n) real: s_i(x) s_j(x) for each pair, s = 1 - 2 * bit; cached on the ansatz."""
    key = ("signs", dtype, str(device))
    m = ansatz._cache.get(key)
    if m is None:
        s = _signs(ansatz.n, dtype, device)
        i = torch.tensor([p[0] for p in ansatz.pairs], dtype=torch.long, device=device)
        j = torch.tensor([p[1] for p in ansatz.pairs], dtype=torch.long, device=device)
        m = s[i] * s[j]
        ansatz._cache[key] = m
    return m


def _split_plan(ansatz: Ansatz, dtype: torch.dtype, device: torch.device) -> dict:
    """Index and sign tensors of the split phase build (cached on the ansatz per dtype and device).

    Bits split into lo = 0..m-1 and hi = m..n-1 (m = n // 2). Pairs inside a half use that half's pair-sign
    matrix (|E_half|, 2**bits); cross pairs go into a (m, n-m) coupling matrix whose entries ``cross_flat``
    selects from a one-hot scatter matrix (|E_cross|, m (n-m)).
    """
    key = ("split", dtype, str(device))
    plan = ansatz._cache.get(key)
    if plan is not None:
        return plan
    n = ansatz.n
    m = n // 2

    def half(lo: int, bits: int, sel: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        s = _signs(bits, dtype, device)
        rows = torch.tensor([i - lo for i, _, _ in sel], dtype=torch.long, device=device)
        cols = torch.tensor([j - lo for _, j, _ in sel], dtype=torch.long, device=device)
        idx = torch.tensor([e for _, _, e in sel], dtype=torch.long, device=device)
        return idx, s[rows] * s[cols]

    lo_pairs = [(i, j, e) for e, (i, j) in enumerate(ansatz.pairs) if j < m]
    hi_pairs = [(i, j, e) for e, (i, j) in enumerate(ansatz.pairs) if i >= m]
    cross = [(i, j - m, e) for e, (i, j) in enumerate(ansatz.pairs) if i < m <= j]
    scatter = torch.zeros(len(cross), m * (n - m), dtype=dtype, device=device)
    for r, (i, j, _) in enumerate(cross):
        scatter[r, i * (n - m) + j] = 1.0
    plan = {
        "m": m,
        "lo": half(0, m, lo_pairs),
        "hi": half(m, n - m, hi_pairs),
        "cross_idx": torch.tensor([e for _, _, e in cross], dtype=torch.long, device=device),
        "scatter": scatter,
        "s_lo": _signs(m, dtype, device),
        "s_hi": _signs(n - m, dtype, device),
    }
    ansatz._cache[key] = plan
    return plan


def _split_angles(ansatz: Ansatz, t: torch.Tensor, cross: bool = True):
    """Layer RXX angles t (B, |E|) -> (A_lo (B, 2**m), A_hi (B, 2**(n-m)), C (B, 2**(n-m), 2**m)) with
    sum_{(i,j)} t_ij s_i s_j = C[x_hi, x_lo] + A_hi[x_hi] + A_lo[x_lo]; with ``cross=False`` the (B, m, n-m)
    coupling T of the cross pairs instead of C (None without cross pairs), see :func:`_cross_angles`.
    """
    plan = _split_plan(ansatz, t.dtype, t.device)
    n, m, b = ansatz.n, plan["m"], t.shape[0]

    def sub(part: tuple[torch.Tensor, torch.Tensor], bits: int) -> torch.Tensor:
        idx, s = part
        return t[:, idx] @ s if idx.numel() else t.new_zeros(b, 2**bits)

    a_lo, a_hi = sub(plan["lo"], m), sub(plan["hi"], n - m)
    coupling = None
    if plan["cross_idx"].numel():
        coupling = (t[:, plan["cross_idx"]] @ plan["scatter"]).view(b, m, n - m)
    if not cross:
        return a_lo, a_hi, coupling
    if coupling is None:
        return a_lo, a_hi, t.new_zeros(b, 2 ** (n - m), 2**m)
    return a_lo, a_hi, _cross_angles(ansatz, coupling)


def _cross_angles(ansatz: Ansatz, coupling: torch.Tensor) -> torch.Tensor:
    """C = S_hi^T T^T S_lo (B, 2**(n-m), 2**m) for the coupling T (B, m, n-m): one GEMM (B m, n-m) @
    (n-m, 2**(n-m)) and one (B 2**(n-m), m) @ (m, 2**m), cost O(B 2**n m) instead of O(B 2**n |E|)."""
    plan = _split_plan(ansatz, coupling.dtype, coupling.device)
    b, m, nm = coupling.shape
    y = (coupling.reshape(b * m, nm) @ plan["s_hi"]).view(b, m, 2**nm)  # (B, m, 2**(n-m))
    return (y.transpose(1, 2).reshape(b * 2**nm, m) @ plan["s_lo"]).view(b, 2**nm, 2**m)


def _pair_angles(ansatz: Ansatz, t: torch.Tensor) -> torch.Tensor:
    """sum_{(i,j)} t_ij s_i s_j for the layer's RXX angles t (B, |E|) -> (B, 2**n)."""
    if ansatz.num_pairs == 0:
        return t.new_zeros(t.shape[0], 2**ansatz.n)
    if _use_sign_matrix(ansatz):
        return t @ _sign_matrix(ansatz, t.dtype, t.device)
    a_lo, a_hi, c = _split_angles(ansatz, t)
    return (c + a_hi.unsqueeze(2) + a_lo.unsqueeze(1)).reshape(t.shape[0], -1)


def _use_sign_matrix(ansatz: Ansatz) -> bool:
    return ansatz.num_pairs * 2**ansatz.n <= _SIGN_MATRIX_MAX_ENTRIES


# ----------------------------------------------------------------- complex arithmetic on (re, im) pairs
def _cmul(ar: torch.Tensor, ai: torch.Tensor, br: torch.Tensor, bi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ar + i ai)(br + i bi) on real tensors (broadcasting; the in-place addcmul_ on the fresh products
    saves one allocation each and is autograd-safe: mul's backward needs its inputs, not its output)."""
    return (ar * br).addcmul_(ai, bi, value=-1), (ar * bi).addcmul_(ai, br)


def _phase(re: torch.Tensor, im: torch.Tensor, ang: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(re + i im) * exp(i ang)."""
    return _cmul(re, im, torch.cos(ang), torch.sin(ang))


def _kron_vec(vr: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v (B, m, 2) as (re, im) -> (B, 2**m) = v_{m-1} (x) ... (x) v_0 (qubit 0 = least significant bit)."""
    b, m = vr.shape[:2]
    if m == 0:
        return vr.new_ones(b, 1), vr.new_zeros(b, 1)
    outr, outi = vr[:, 0], vi[:, 0]
    for q in range(1, m):
        outr, outi = _cmul(vr[:, q, :, None], vi[:, q, :, None], outr[:, None, :], outi[:, None, :])
        outr, outi = outr.reshape(b, -1), outi.reshape(b, -1)
    return outr, outi


def _region1(ansatz: Ansatz, thetas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(re, im), each (B, n, 2): v_q = H RZ(b_q) RX(a_q)|0> = H [e^{-ib/2} cos(a/2), -i e^{ib/2} sin(a/2)]."""
    a = thetas[:, ansatz.region1_rx] * 0.5
    bz = thetas[:, ansatz.region1_rz] * 0.5
    c, s, cb, sb = torch.cos(a), torch.sin(a), torch.cos(bz), torch.sin(bz)
    w0r, w0i, w1r, w1i = c * cb, -c * sb, s * sb, -s * cb
    r = 1.0 / math.sqrt(2.0)
    re = torch.stack((w0r + w1r, w0r - w1r), dim=-1) * r
    im = torch.stack((w0i + w1i, w0i - w1i), dim=-1) * r
    return re, im


def _layer_gates(ansatz: Ansatz, thetas: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(re, im), each (B, n, 2, 2): H RX(d) RZ(c) H between layers, RX(d) RZ(c) H after the last layer."""
    sl = ansatz.layer_slices(layer)
    hc, hd = thetas[:, sl.rz] * 0.5, thetas[:, sl.rx] * 0.5
    cc, sc, cd, sd = torch.cos(hc), torch.sin(hc), torch.cos(hd), torch.sin(hd)
    # RX(d) RZ(c) = [[cd e^{-ic/2}, -i sd e^{ic/2}], [-i sd e^{-ic/2}, cd e^{ic/2}]]
    mr = torch.stack((torch.stack((cd * cc, sd * sc), -1), torch.stack((-sd * sc, cd * cc), -1)), -2)
    mi = torch.stack((torch.stack((-cd * sc, -sd * cc), -1), torch.stack((-sd * cc, cd * sc), -1)), -2)
    r = 1.0 / math.sqrt(2.0)
    # right-multiply by H: columns (c0 + c1, c0 - c1) / sqrt 2; between layers also left-multiply by H
    ur = torch.stack((mr[..., 0] + mr[..., 1], mr[..., 0] - mr[..., 1]), -1) * r
    ui = torch.stack((mi[..., 0] + mi[..., 1], mi[..., 0] - mi[..., 1]), -1) * r
    if layer < ansatz.layers - 1:
        ur = torch.stack((ur[..., 0, :] + ur[..., 1, :], ur[..., 0, :] - ur[..., 1, :]), -2) * r
        ui = torch.stack((ui[..., 0, :] + ui[..., 1, :], ui[..., 0, :] - ui[..., 1, :]), -2) * r
    return ur, ui


def _kron_chain(gr: torch.Tensor, gi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gates (B, k, 2, 2) as (re, im) -> (B, 2**k, 2**k) = G_{k-1} (x) ... (x) G_0."""
    b, k = gr.shape[:2]
    kr, ki = gr[:, 0], gi[:, 0]
    for q in range(1, k):
        d = 2 * kr.shape[-1]
        kr, ki = _cmul(
            gr[:, q][:, :, None, :, None], gi[:, q][:, :, None, :, None], kr[:, None, :, None, :], ki[:, None, :, None, :]
        )
        kr, ki = kr.reshape(b, d, d), ki.reshape(b, d, d)
    return kr, ki


def _gate_blocks(gr: torch.Tensor, gi: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Gates (B, n, 2, 2) as (re, im) -> per block of k = _BLOCK qubits (the last may be smaller) the real
    matrices ([[Kr], [Ki]], [[-Ki], [Kr]]), each (B, 2**(k+1), 2**k), of K = G_{q+k-1} (x) ... (x) G_q."""
    n = gr.shape[1]
    out = []
    for q in range(0, n, _BLOCK):
        kr, ki = _kron_chain(gr[:, q : q + _BLOCK], gi[:, q : q + _BLOCK])
        out.append((torch.cat((kr, ki), 1), torch.cat((-ki, kr), 1)))
    return out


def _apply_gates(re: torch.Tensor, im: torch.Tensor, blocks: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Apply a layer's single-qubit gates, given as :func:`_gate_blocks`, to the state (re, im) (b, 2**n);
    returns the new state as one real tensor (b, 2, 2**n) (real part, imaginary part).

    Per block of k qubits at the bottom of the index: [Re; Im] <- [[Kr], [Ki]] @ Xr + [[-Ki], [Kr]] @ Xi with
    X = state.view(b, 2**(n-k), 2**k)^T: two real batched GEMMs (b, 2**(k+1), 2**k) @ (b, 2**k, 2**(n-k))
    that also rotate the index by k bits (the block's bits move to the top), so the next block is at the
    bottom; after all blocks the bit order is restored.
    """
    b, size = re.shape
    x = None
    for upper, lower in blocks:
        k = upper.shape[2].bit_length() - 1
        xr = re.view(b, size >> k, 1 << k).transpose(1, 2)
        xi = im.view(b, size >> k, 1 << k).transpose(1, 2)
        x = torch.bmm(upper, xr).baddbmm_(lower, xi).view(b, 2, size)  # in place: no copy of the bmm result
        re, im = x[:, 0], x[:, 1]
    return x


def _prepare(ansatz: Ansatz, thetas: torch.Tensor) -> list:
    """Small per-parameter-vector tensors for the whole batch (cheap; computed once, then sliced per chunk):
    [layer-0 state pieces, then per layer (RXX angles t * -1/2 or None, gate blocks)]."""
    th = thetas.to(_compute_dtype(thetas.dtype))
    m = ansatz.n // 2
    vr, vi = _region1(ansatz, th)  # X-basis single-qubit vectors after region 1
    lo, hi = _kron_vec(vr[:, :m], vi[:, :m]), _kron_vec(vr[:, m:], vi[:, m:])  # (B, 2**m), (B, 2**(n-m))
    layers = []
    coupling = None
    for layer in range(ansatz.layers):
        t = th[:, ansatz.layer_slices(layer).rxx] * -0.5 if ansatz.num_pairs else None  # phase e^{i sum t s s}
        if layer == 0 and t is not None and not _use_sign_matrix(ansatz):
            # fold the within-half angles into the two half vectors: only the cross term is left for 2**n states
            a_lo, a_hi, coupling = _split_angles(ansatz, t, cross=False)
            lo, hi = _phase(*lo, a_lo), _phase(*hi, a_hi)
            t = None
        layers.append((t, _gate_blocks(*_layer_gates(ansatz, th, layer))))
    return [lo, hi, coupling, layers]


def _slice_prep(prep, rows: slice):
    def cut(v):
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            return type(v)(cut(w) for w in v)
        return v[rows]

    return cut(prep)


def _simulate(ansatz: Ansatz, prep) -> torch.Tensor:
    """Amplitudes (b, 2, 2**n) ([:, 0] real, [:, 1] imaginary part) of U(theta)|0...0> from :func:`_prepare`."""
    (lr, li), (hr, hi), coupling, layers = prep
    b = lr.shape[0]
    if coupling is not None and not (torch.is_grad_enabled() and lr.requires_grad):
        # no autograd: polar form |h||l| e^{i(C + arg h + arg l)}, 5 passes over 2**n instead of 8 (atan2 has
        # no gradient at zero amplitude, so the differentiable path below stays Cartesian)
        ang = _cross_angles(ansatz, coupling)
        ang.add_(torch.atan2(hi, hr)[:, :, None]).add_(torch.atan2(li, lr)[:, None, :])
        mag = torch.hypot(hr, hi)[:, :, None] * torch.hypot(lr, li)[:, None, :]
        re, im = torch.cos(ang).mul_(mag), ang.sin_().mul_(mag)
    else:
        re, im = _cmul(hr[:, :, None], hi[:, :, None], lr[:, None, :], li[:, None, :])  # region-1 product state
        if coupling is not None:
            re, im = _phase(re, im, _cross_angles(ansatz, coupling))
    re, im = re.reshape(b, -1), im.reshape(b, -1)
    x = None
    for layer, (t, blocks) in enumerate(layers):
        if layer > 0:
            re, im = x[:, 0], x[:, 1]
        if t is not None:
            re, im = _phase(re, im, _pair_angles(ansatz, t))
        x = _apply_gates(re, im, blocks)
    return x


def _rows_per_chunk(ansatz: Ansatz, batch: int) -> int:
    """Parameter vectors simulated together: about _CHUNK_ELEMENTS amplitudes per chunk (at least one row)."""
    return max(1, min(batch, _CHUNK_ELEMENTS >> ansatz.n))


def _chunks(ansatz: Ansatz, thetas: torch.Tensor):
    """Yield (slice of rows, amplitudes (b, 2, 2**n)) over row chunks of thetas (B, P) or (P,)."""
    thetas = ansatz.check_thetas(thetas)
    if ansatz.n > MAX_QUBITS:
        raise ValueError(
            f"the torch simulator supports at most MAX_QUBITS = {MAX_QUBITS} qubits, got n = {ansatz.n}"
        )
    _compute_dtype(thetas.dtype)
    prep = _prepare(ansatz, thetas)
    batch = thetas.shape[0]
    step = _rows_per_chunk(ansatz, batch)
    for lo in range(0, batch, step):
        sl = slice(lo, min(lo + step, batch))
        yield sl, _simulate(ansatz, prep if step >= batch else _slice_prep(prep, sl))


def _abs2(x: torch.Tensor) -> torch.Tensor:
    re, im = x[:, 0], x[:, 1]
    return (re * re).addcmul_(im, im)


def probability_chunks(ansatz: Ansatz, thetas: torch.Tensor):
    """Yield (slice of rows, probabilities (b, 2**n)) over cache-sized row chunks of thetas (B, P) or (P,).

    Lets a consumer (e.g. inverse-CDF sampling) use each chunk while it is in cache, without materialising
    all (B, 2**n) probabilities; the values equal those of :func:`probabilities`.
    """
    for sl, x in _chunks(ansatz, thetas):
        yield sl, _abs2(x)


def statevector(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Complex amplitudes (B, 2**n) of U(theta)|0...0> (Eq. 4), for thetas (B, P) or (P,).

    complex128 for float64 thetas, complex64 otherwise.
    """
    return torch.cat([torch.complex(x[:, 0], x[:, 1]) for _, x in _chunks(ansatz, thetas)])


def probabilities(ansatz: Ansatz, thetas: torch.Tensor) -> torch.Tensor:
    """Born probabilities p_theta(x) = |<x|U(theta)|0>|^2 (Eq. 5): thetas (B, P) or (P,) -> (B, 2**n).

    float64 for float64 thetas, float32 otherwise; device follows ``thetas`` (float64 recommended for tests
    and finite differences); differentiable by autograd. Bit q of the index x is qubit q.
    """
    parts = [p for _, p in probability_chunks(ansatz, thetas)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
