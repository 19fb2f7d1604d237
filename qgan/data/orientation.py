"""Vectorised quaternion maths for cubic crystals (BCC ferrite, FCC austenite).

Conventions (the same as orix 0.15, checked in tests): a unit quaternion ``q = (w, x, y, z)`` is an
orientation mapping sample to crystal coordinates; the Hamilton product composes rotations; crystal
symmetry acts from the left (``s * q`` is equivalent to ``q``); the misorientation from grain 1 to grain 2
is ``m = q2 * conj(q1)`` and the disorientation angle is ``min_s angle(s * m)`` over the 24 proper cubic
rotations ``s`` (point group 432).

Everything works on arrays ``(..., 4)`` with no Python loop over pixels: the symmetry reduction is a
matrix product against the 24 symmetry operators, ``|(s * m).w| = |s~ . m|`` with ``s~ = (s_w, -s_xyz)``.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "CUBIC_SYMMETRY", "quat_multiply", "quat_conjugate", "quat_normalize", "quat_from_matrix",
    "matrix_from_quat", "quat_from_axis_angle", "quat_from_euler", "random_quaternions",
    "misorientation_angle", "disorientation_angle", "distance_to_set", "QuaternionSet", "or_matrix", "or_quaternion",
    "KS_QUATERNION", "NW_QUATERNION", "ks_intervariant_set", "ks_parent_set", "ks_variants",
    "ks_intervariant_angles", "ks_variant_planes",
    "cubic_average",
]


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternion arrays ``(..., 4)`` (broadcasting)."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse for unit quaternions), shape kept."""
    return np.asarray(q) * np.array([1.0, -1.0, -1.0, -1.0], dtype=np.asarray(q).dtype)


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions with non-negative scalar part."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` with ``R(a*b) = R(a) R(b)``."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternion of a proper rotation matrix ``(3, 3)`` (inverse of :func:`matrix_from_quat`)."""
    m = np.asarray(m, dtype=np.float64)
    # Largest-component method (robust for every rotation angle).
    tr = np.trace(m)
    cands = np.array([1 + tr, 1 + m[0, 0] - m[1, 1] - m[2, 2], 1 - m[0, 0] + m[1, 1] - m[2, 2],
                      1 - m[0, 0] - m[1, 1] + m[2, 2]])
    i = int(np.argmax(cands))
    s = 2.0 * np.sqrt(cands[i])
    if i == 0:
        q = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        q = [(m[2, 1] - m[1, 2]) / s, s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s]
    else:
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4]
    return quat_normalize(np.array(q))


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Quaternions ``(..., 4)`` for rotations by ``angle`` (radians, ``(...)``) about ``axis`` ``(..., 3)``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    return np.concatenate([np.cos(half)[..., None], np.sin(half)[..., None] * axis], axis=-1)


def quat_from_euler(euler: np.ndarray) -> np.ndarray:
    """Bunge Euler angles ``(..., 3)`` (phi1, Phi, phi2; radians) -> orientation quaternions ``(..., 4)``.

    Same result as ``orix.quaternion.Rotation.from_euler`` (checked in tests).
    """
    e = np.asarray(euler, dtype=np.float64)
    p1, P, p2 = e[..., 0], e[..., 1], e[..., 2]
    sigma = 0.5 * (p1 + p2)
    delta = 0.5 * (p1 - p2)
    c, s = np.cos(0.5 * P), np.sin(0.5 * P)
    q = np.stack([c * np.cos(sigma), -s * np.cos(delta), -s * np.sin(delta), -c * np.sin(sigma)], -1)
    return quat_normalize(q)


def random_quaternions(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly distributed unit quaternions ``(n, 4)`` (Shoemake)."""
    u1, u2, u3 = rng.random((3, n))
    a, b = np.sqrt(1 - u1), np.sqrt(u1)
    q = np.stack([a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2),
                  b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)], -1)
    return quat_normalize(q)


def _cubic_symmetry() -> np.ndarray:
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for r, (c, s) in enumerate(zip(perm, signs)):
                m[r, c] = s
            if np.linalg.det(m) > 0:
                mats.append(m)
    qs = np.array([quat_from_matrix(m) for m in mats])
    order = np.lexsort(np.round(qs, 6).T[::-1])[::-1]
    return qs[order]


CUBIC_SYMMETRY: np.ndarray = _cubic_symmetry()
"""(24, 4) proper rotations of point group 432."""

_SYM_T = (CUBIC_SYMMETRY * np.array([1.0, -1.0, -1.0, -1.0])).T  # (4, 24): (s*m).w = m @ _SYM_T


def _angle_from_w(w: np.ndarray) -> np.ndarray:
    return np.degrees(2.0 * np.arccos(np.clip(w, 0.0, 1.0)))


def misorientation_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Rotation angle (deg) of ``q2 * conj(q1)`` without symmetry, shape of the broadcast."""
    w = np.abs(np.sum(np.asarray(q1) * np.asarray(q2), axis=-1))
    return _angle_from_w(w)


def disorientation_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Cubic disorientation angle (deg, 0..62.8) between orientations ``q1`` and ``q2`` ``(..., 4)``.

    ``min_s angle(s * q2 * conj(q1))`` over the 24 proper cubic rotations: one quaternion product and one
    ``(..., 4) @ (4, 24)`` matrix product, no loops.
    """
    m = quat_multiply(q2, quat_conjugate(q1))
    w = np.abs(m @ _SYM_T).max(axis=-1)
    return _angle_from_w(w)


class QuaternionSet:
    """A symmetry-closed set of rotations ``(K, 4)`` with a k-d tree over ``+-q`` for nearest-rotation queries.

    For unit quaternions ``|m - r|^2 = 2 - 2 m.r``, so the Euclidean nearest neighbour of ``m`` among ``+-r``
    maximises ``|m.r|``, i.e. minimises the rotation angle of ``conj(r) * m``: an exact search in O(log K).
    """

    def __init__(self, quats: np.ndarray):
        from scipy.spatial import cKDTree

        self.quats = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
        self._tree = cKDTree(np.concatenate([self.quats, -self.quats]))

    def __len__(self) -> int:
        return len(self.quats)

    def distance(self, m: np.ndarray) -> np.ndarray:
        """Smallest rotation angle (deg) between each of ``m`` ``(N, 4)`` and the set."""
        m = np.asarray(m, dtype=np.float64).reshape(-1, 4)
        if len(m) == 0:
            return np.zeros(0)
        _, idx = self._tree.query(m)
        best = np.concatenate([self.quats, -self.quats])[idx]
        prod = quat_multiply(quat_conjugate(best), m)
        return np.degrees(2.0 * np.arctan2(np.linalg.norm(prod[:, 1:], axis=1), np.abs(prod[:, 0])))


def distance_to_set(m: np.ndarray, ref) -> np.ndarray:
    """Smallest rotation angle (deg) between misorientations ``m`` ``(N, 4)`` and any rotation in ``ref``.

    ``ref``: a :class:`QuaternionSet` or an array ``(K, 4)`` that must already be closed under the symmetry
    (see :func:`ks_intervariant_set`), so the distance is ``min_k angle(conj(ref_k) * m)``.
    """
    if not isinstance(ref, QuaternionSet):
        ref = QuaternionSet(ref)
    return ref.distance(m)


def or_matrix(plane_g, plane_a, dir_g, dir_a) -> np.ndarray:
    """Rotation matrix mapping austenite crystal coordinates to ferrite crystal coordinates for the
    orientation relation ``plane_g || plane_a``, ``dir_g || dir_a`` (``g_alpha = R g_gamma``)."""
    def frame(p, d):
        p = np.asarray(p, float) / np.linalg.norm(p)
        d = np.asarray(d, float) / np.linalg.norm(d)
        return np.stack([p, d, np.cross(p, d)], axis=1)
    return frame(plane_a, dir_a) @ frame(plane_g, dir_g).T


def or_quaternion(plane_g, plane_a, dir_g, dir_a) -> np.ndarray:
    """Quaternion ``K`` of an orientation relation: ``q_alpha = K * q_gamma`` (see :func:`or_matrix`)."""
    return quat_from_matrix(or_matrix(plane_g, plane_a, dir_g, dir_a))


# Kurdjumov-Sachs: (111)g || (011)a, [-101]g || [-1-11]a.  Nishiyama-Wassermann: (111)g || (011)a,
# [-1-12]g || [0-11]a.  They differ by 5.26 deg about the common plane normal.
KS_QUATERNION: np.ndarray = or_quaternion([1, 1, 1], [0, 1, 1], [-1, 0, 1], [-1, -1, 1])
NW_QUATERNION: np.ndarray = or_quaternion([1, 1, 1], [0, 1, 1], [-1, -1, 2], [0, -1, 1])


def _unique_up_to_sign(q: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    q = quat_normalize(q.reshape(-1, 4))
    key = np.round(q / tol).astype(np.int64)
    # canonical sign already fixed by quat_normalize (w >= 0); w == 0 ties are rare, handle them too
    zero = np.abs(q[:, 0]) < tol
    first = np.argmax(np.abs(q[:, 1:]) > tol, axis=1) + 1
    flip = zero & (q[np.arange(len(q)), first] < 0)
    q[flip] *= -1
    key = np.round(q / tol).astype(np.int64)
    _, idx = np.unique(key, axis=0, return_index=True)
    return q[np.sort(idx)]


def ks_variants(parent: np.ndarray, k: np.ndarray = KS_QUATERNION) -> np.ndarray:
    """The 24 variant orientations ``K * s * parent`` ``(..., 24, 4)`` of an austenite orientation."""
    sp = quat_multiply(CUBIC_SYMMETRY, np.asarray(parent)[..., None, :])
    return quat_multiply(k, sp)


def ks_variant_planes(k: np.ndarray = KS_QUATERNION) -> np.ndarray:
    """Close-packed plane group (0..3) of each of the 24 variants ``K * s_i`` (the packet they share)."""
    planes = np.array([[1, 1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, -1]], float)
    # variant i has (011)a || s_i^-1 (111)g: the gamma plane is R(s_i)^T [111]
    rs = matrix_from_quat(CUBIC_SYMMETRY)
    p = np.einsum("kji,j->ki", rs, np.array([1.0, 1.0, 1.0]))
    dots = np.abs(p @ planes.T)
    return np.argmax(dots, axis=1)


def _closure(cores: np.ndarray) -> np.ndarray:
    """All ``s1 * c * s2`` for the given cores ``(K, 4)``, deduplicated (K' <= 576 K, 4)."""
    s = CUBIC_SYMMETRY
    prod = quat_multiply(s[:, None, None, :], quat_multiply(cores[None, :, None, :], s[None, None, :, :]))
    return _unique_up_to_sign(prod)


def ks_intervariant_set(k: np.ndarray = KS_QUATERNION, min_angle: float = 1.0) -> np.ndarray:
    """Symmetry-closed set of the KS inter-variant misorientations ``K s K^-1`` (identity excluded).

    For a BCC|BCC misorientation ``m``, ``distance_to_set(m, ks_intervariant_set())`` is its deviation from
    the nearest KS inter-variant misorientation.
    """
    cores = quat_multiply(k, quat_multiply(CUBIC_SYMMETRY, quat_conjugate(k)))
    cores = cores[misorientation_angle(np.array([1.0, 0, 0, 0]), cores) > 1e-6]
    closed = _closure(cores)
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    keep = disorientation_angle(ident, closed) > min_angle
    return closed[keep]


def ks_parent_set(k: np.ndarray = KS_QUATERNION) -> np.ndarray:
    """Symmetry-closed set of ``s1 K s2``: ``distance_to_set(q_bcc * conj(q_fcc), ks_parent_set())`` is the
    deviation of a BCC|FCC pair from the KS relation."""
    return _closure(np.asarray(k)[None, :])


def ks_intervariant_angles(k: np.ndarray = KS_QUATERNION) -> np.ndarray:
    """Disorientation angles (deg) of ``K s_i K^-1`` for the 24 ``s_i`` (V1 against V1..V24)."""
    cores = quat_multiply(k, quat_multiply(CUBIC_SYMMETRY, quat_conjugate(k)))
    return disorientation_angle(np.array([1.0, 0, 0, 0]), cores)


def cubic_average(q: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Mean orientation per label: ``q`` ``(N, 4)``, ``labels`` ``(N,)`` in ``0..n_labels-1``.

    Each quaternion is replaced by its symmetry equivalent ``s q`` closest to the first member ``r`` of its
    label (``(s q) . r = q . (conj(s) r)``, so only the 24 ``conj(s) r`` per label are formed), then the
    quaternions are summed and normalised (fine for the small spread inside a 5 deg grain).
    Returns ``(n_labels, 4)``; labels with no member get the identity.
    """
    q = np.asarray(q, dtype=np.float64)
    labels = np.asarray(labels)
    first = np.full(n_labels, -1, dtype=np.int64)
    order = np.arange(len(labels))[::-1]
    first[labels[order]] = order  # last write wins -> smallest index
    ref = q[np.maximum(first, 0)]                                                   # (n, 4)
    cands = quat_multiply(quat_conjugate(CUBIC_SYMMETRY)[None, :, :], ref[:, None, :])  # (n, 24, 4)
    dots = np.einsum("nkc,nc->nk", cands[labels], q)                               # (N, 24)
    best = np.argmax(np.abs(dots), axis=1)
    rows = np.arange(len(q))
    e = quat_multiply(CUBIC_SYMMETRY[best], q) * np.sign(dots[rows, best])[:, None]
    acc = np.stack([np.bincount(labels, e[:, c], minlength=n_labels) for c in range(4)], axis=1)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    acc[norm[:, 0] == 0] = [1.0, 0, 0, 0]
    norm[norm == 0] = 1.0
    return quat_normalize(acc / norm)
