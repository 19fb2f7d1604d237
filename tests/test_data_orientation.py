"""Quaternion maths of qgan.data.orientation checked against orix and against brute force."""
import itertools
import warnings

import numpy as np
import pytest

from qgan.data.orientation import (CUBIC_SYMMETRY, KS_QUATERNION, NW_QUATERNION, cubic_average,
                                   disorientation_angle, distance_to_set, ks_intervariant_angles,
                                   ks_intervariant_set, ks_parent_set, ks_variant_planes, ks_variants,
                                   quat_conjugate, quat_from_axis_angle, quat_from_euler, quat_multiply,
                                   random_quaternions)


def test_cubic_symmetry_is_the_432_group():
    s = CUBIC_SYMMETRY
    assert s.shape == (24, 4)
    prod = quat_multiply(s[:, None], s[None, :]).reshape(-1, 4)
    # closure: every product is (up to sign) one of the 24 elements
    d = np.abs(prod @ s.T).max(axis=1)
    assert np.allclose(d, 1.0)


def test_euler_conversion_matches_orix():
    from orix.quaternion import Rotation

    e = np.random.default_rng(0).random((50, 3)) * [2 * np.pi, np.pi, 2 * np.pi]
    ours = quat_from_euler(e)
    theirs = Rotation.from_euler(e).data
    assert np.allclose(np.abs(np.sum(ours * theirs, axis=1)), 1.0, atol=1e-12)


def test_disorientation_matches_orix_on_random_pairs():
    from orix.quaternion import Orientation
    from orix.quaternion.symmetry import O

    rng = np.random.default_rng(1)
    a, b = random_quaternions(rng, 40), random_quaternions(rng, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Orientation(a, symmetry=O).angle_with(Orientation(b, symmetry=O), degrees=True)
    assert np.allclose(disorientation_angle(a, b), ref, atol=1e-6)
    assert disorientation_angle(a, b).max() <= 62.81


def test_disorientation_of_a_known_rotation_and_its_symmetric_equivalent():
    rng = np.random.default_rng(2)
    g = random_quaternions(rng, 1)[0]
    rot = quat_from_axis_angle(np.array([1.0, 2.0, 3.0]), np.radians(7.0))
    g2 = quat_multiply(rot, g)
    assert disorientation_angle(g, g2) == pytest.approx(7.0, abs=1e-9)
    # a symmetry-equivalent description of g2 has the same disorientation
    assert disorientation_angle(g, quat_multiply(CUBIC_SYMMETRY[5], g2)) == pytest.approx(7.0, abs=1e-9)
    # 90 deg about a cube axis is a symmetry: disorientation 0
    r90 = quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), np.pi / 2)
    assert disorientation_angle(g, quat_multiply(r90, g)) == pytest.approx(0.0, abs=1e-6)


def test_ks_intervariant_angles_are_the_literature_values():
    ang = np.sort(np.round(ks_intervariant_angles(), 2))
    expected = [0, 10.53, 10.53, 14.88, 14.88, 20.61, 20.61, 21.06, 47.11, 47.11, 49.47, 49.47, 50.51,
                50.51, 50.51, 50.51, 51.73, 57.21, 57.21, 57.21, 57.21, 60, 60, 60]
    assert np.allclose(ang, expected, atol=0.01)


def test_ks_and_nw_differ_by_5_26_degrees():
    assert disorientation_angle(KS_QUATERNION, NW_QUATERNION) == pytest.approx(5.26, abs=0.01)


def test_variants_fall_in_four_packets_of_six():
    assert np.bincount(ks_variant_planes()).tolist() == [6, 6, 6, 6]


def _brute_distance(m, cores):
    """Independent check: min over s1, s2, core of angle(s1 core s2 m^-1)... written with explicit loops."""
    best = 180.0
    for c in cores:
        for s1, s2 in itertools.product(CUBIC_SYMMETRY, CUBIC_SYMMETRY):
            r = quat_multiply(s1, quat_multiply(c, s2))
            d = quat_multiply(quat_conjugate(r), m)
            best = min(best, float(np.degrees(2 * np.arccos(min(1.0, abs(d[0]))))))
    return best


def test_distance_to_set_agrees_with_brute_force():
    rng = np.random.default_rng(3)
    m = random_quaternions(rng, 3)
    got = distance_to_set(m, ks_parent_set())
    want = [_brute_distance(x, [KS_QUATERNION]) for x in m]
    assert np.allclose(got, want, atol=1e-6)


def test_variants_of_one_parent_are_ks_related():
    rng = np.random.default_rng(4)
    parent = random_quaternions(rng, 1)[0]
    v = ks_variants(parent)
    # every variant is exactly KS to the parent, every pair of variants an inter-variant misorientation
    assert distance_to_set(quat_multiply(v, quat_conjugate(parent)), ks_parent_set()).max() < 1e-4
    m = quat_multiply(v[1:], quat_conjugate(v[0]))
    assert distance_to_set(m, ks_intervariant_set()).max() < 1e-4
    # a 3 deg perturbation of an inter-variant misorientation is 3 deg away from the set
    tilt = quat_from_axis_angle(np.array([0.3, -0.5, 0.8]), np.radians(3.0))
    assert distance_to_set(quat_multiply(tilt, m[4]), ks_intervariant_set())[0] == pytest.approx(3.0, abs=1e-3)


def test_cubic_average_undoes_symmetry_and_sign_flips():
    rng = np.random.default_rng(5)
    g = random_quaternions(rng, 1)[0]
    small = quat_from_axis_angle(rng.normal(size=(10, 3)), np.radians(rng.uniform(0, 1, 10)))
    q = quat_multiply(small, g)
    q = quat_multiply(CUBIC_SYMMETRY[rng.integers(0, 24, 10)], q) * rng.choice([-1, 1], 10)[:, None]
    mean = cubic_average(q, np.zeros(10, int), 1)[0]
    assert disorientation_angle(mean, g) < 1.0
