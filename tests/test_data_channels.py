"""Channel maths on small hand-made maps: KAM by hand, grains, KS bicrystals, patches and scaling."""
import numpy as np
import pytest

from qgan.data import OrientationMap, channels, extract_patches, scale_channels, segment_grains
from qgan.data.channels import grain_centres, grain_ks_deviation, kam
from qgan.data.orientation import (CUBIC_SYMMETRY, ks_variants, quat_from_axis_angle,
                                   quat_multiply, random_quaternions)

Z = np.array([0.0, 0.0, 1.0])


def rot_z(deg):
    return quat_from_axis_angle(Z, np.radians(deg))


def make_map(quats, phase=None, iq=None):
    q = np.asarray(quats, float)
    h, w = q.shape[:2]
    phase = np.ones((h, w), np.int8) if phase is None else np.asarray(phase, np.int8)
    iq = np.ones((h, w), np.float32) if iq is None else iq
    return OrientationMap(q, phase, iq, 1.0, "test")


def test_kam_on_a_2x2_map_by_hand():
    # rotations about z by 0, 1 / 2, 4 deg: pair angles 1, 2, 4, 1, 3, 2
    m = make_map([[rot_z(0), rot_z(1)], [rot_z(2), rot_z(4)]])
    k = kam(m)
    assert k[0, 0] == pytest.approx((1 + 2 + 4) / 3, abs=1e-5)
    assert k[0, 1] == pytest.approx((1 + 1 + 3) / 3, abs=1e-5)
    assert k[1, 0] == pytest.approx((2 + 1 + 2) / 3, abs=1e-5)
    assert k[1, 1] == pytest.approx(3.0, abs=1e-5)  # (4 + 3 + 2) / 3 = 3, at the clip limit


def test_kam_ignores_angles_above_5_deg_other_phases_and_symmetry():
    # bottom-right at 8 deg: its angles to the others are 8, 7, 6 -> all ignored; KAM 0 there
    m = make_map([[rot_z(0), rot_z(1)], [rot_z(2), rot_z(8)]])
    k = kam(m)
    assert k[1, 1] == pytest.approx(0.0)
    assert k[0, 0] == pytest.approx(1.5, abs=1e-5)
    # a 90 deg rotation about z is a cubic symmetry: same KAM
    q = np.array([[rot_z(0), rot_z(91)], [rot_z(2), rot_z(8)]])
    assert kam(make_map(q))[0, 0] == pytest.approx(1.5, abs=1e-5)
    # other phase and noise pixels are not neighbours; noise pixels get 3.5
    ph = np.array([[1, 1], [2, 0]])
    k = kam(make_map([[rot_z(0), rot_z(1)], [rot_z(2), rot_z(4)]], phase=ph))
    assert k[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert k[1, 0] == pytest.approx(0.0)
    assert k[1, 1] == pytest.approx(3.5)


def test_kam_is_clipped_at_3_deg():
    m = make_map([[rot_z(0), rot_z(4.5)], [rot_z(4.5), rot_z(0)]])
    assert kam(m).max() == pytest.approx(3.0)


def _bicrystal(q_left, q_right, phase_left=1, phase_right=1, h=8, w=10):
    q = np.zeros((h, w, 4))
    q[:, : w // 2] = q_left
    q[:, w // 2:] = q_right
    ph = np.full((h, w), phase_left, np.int8)
    ph[:, w // 2:] = phase_right
    return make_map(q, ph)


def test_grains_split_at_5_deg_and_at_phase_changes():
    g = random_quaternions(np.random.default_rng(0), 1)[0]
    assert segment_grains(_bicrystal(g, quat_multiply(rot_z(4.0), g))).n == 1
    assert segment_grains(_bicrystal(g, quat_multiply(rot_z(6.0), g))).n == 2
    assert segment_grains(_bicrystal(g, g, 1, 2)).n == 2
    # a line of noise pixels separates two identical halves
    m = _bicrystal(g, g)
    m.phase[:, 4] = 0
    gr = segment_grains(m)
    assert gr.n == 2 and (gr.labels[:, 4] == -1).all() and len(gr.pairs) == 0


def test_grain_boundary_by_gradual_rotation_is_not_a_boundary():
    # flood fill compares neighbours: a 1 deg/pixel gradient over 10 px is one grain (20 deg end to end)
    q = np.stack([[rot_z(2.0 * j) for j in range(10)]] * 3)
    assert segment_grains(make_map(q)).n == 1


def test_ks_channel_on_bicrystals():
    parent = random_quaternions(np.random.default_rng(1), 1)[0]
    v = ks_variants(parent)
    # BCC|BCC pair of two KS variants: deviation 0 on both sides
    ks = channels(_bicrystal(v[0], v[7]))[3]
    assert ks.max() < 0.01
    # BCC variant next to its FCC parent: deviation 0
    ks = channels(_bicrystal(v[3], parent, 1, 2))[3]
    assert ks.max() < 0.01
    # a 4 deg tilt away from the relation shows up as 4 deg
    tilt = quat_from_axis_angle(np.array([1.0, 1.0, 0.0]), np.radians(4.0))
    ks = channels(_bicrystal(v[3], quat_multiply(tilt, parent), 1, 2))[3]
    assert np.allclose(ks, 4.0, atol=0.01)
    # large deviations are clipped to 15; FCC|FCC and single grains are 'not available' (20)
    assert channels(_bicrystal(parent, v[2], 2, 2))[3].min() == pytest.approx(20.0)
    assert channels(make_map(np.tile(parent, (4, 4, 1))))[3].min() == pytest.approx(20.0)


def test_ks_deviation_is_the_boundary_weighted_mean_or_the_minimum_over_neighbours():
    rng = np.random.default_rng(2)
    parent = random_quaternions(rng, 1)[0]
    v = ks_variants(parent)
    q = np.zeros((6, 9, 4))
    q[:, :3], q[:, 3:6], q[:, 6:] = v[0], v[5], random_quaternions(rng, 1)[0]
    gr = segment_grains(make_map(q))
    assert gr.n == 3 and gr.pair_length.tolist() == [6, 6]
    left, mid, right = (gr.labels[0, j] for j in (0, 4, 8))
    mn = grain_ks_deviation(gr, "min")
    bm = grain_ks_deviation(gr, "boundary_mean")
    assert mn[left] < 0.01 and mn[mid] < 0.01           # middle: min over both neighbours
    assert 0 <= mn[right] <= 15.0 and bm[right] == pytest.approx(mn[right])   # one neighbour: both agree
    assert bm[left] < 0.01
    assert bm[mid] == pytest.approx(0.5 * mn[right], abs=0.01)                 # equal boundaries: plain mean
    with pytest.raises(ValueError, match="unknown KS aggregate"):
        grain_ks_deviation(gr, "median")


def test_boundary_mean_weights_neighbours_by_shared_boundary_length():
    rng = np.random.default_rng(7)
    v = ks_variants(random_quaternions(rng, 1)[0])
    q = np.zeros((8, 8, 4))
    q[:, :4] = v[0]                                  # left
    q[:6, 4:] = v[1]                                 # top right: KS to the left grain along 6 px ...
    q[6:, 4:] = random_quaternions(rng, 1)[0]        # ... and to an unrelated bottom-right grain along 4 px
    gr = segment_grains(make_map(q))
    left, top, bottom = gr.labels[0, 0], gr.labels[0, 7], gr.labels[7, 7]
    length = {frozenset(p): n for p, n in zip(gr.pairs.tolist(), gr.pair_length.tolist())}
    assert length[frozenset((left, top))] == 6 and length[frozenset((top, bottom))] == 4
    far = grain_ks_deviation(gr, "min")[bottom]      # its smallest deviation is to one of the two others
    dev = grain_ks_deviation(gr, "boundary_mean")
    assert dev[top] == pytest.approx((6 * 0.0 + 4 * pair_deviation(gr, top, bottom)) / 10, abs=1e-3)
    assert far <= pair_deviation(gr, top, bottom) + 1e-9


def pair_deviation(gr, i, j):
    from qgan.data.channels import pair_ks_deviation

    dev, _ = pair_ks_deviation(gr)
    k = [n for n, p in enumerate(gr.pairs.tolist()) if set(p) == {i, j}][0]
    return min(dev[k], 15.0)


@pytest.mark.parametrize("aggregate", ["boundary_mean", "min"])
def test_speck_between_two_ks_laths_is_not_a_neighbour_and_reads_not_available(aggregate):
    rng = np.random.default_rng(8)
    parent = random_quaternions(rng, 1)[0]
    v = ks_variants(parent)
    q = np.zeros((6, 10, 4))
    q[:, :5], q[:, 5:] = v[0], v[7]                      # two KS-related laths
    q[2, 4] = q[3, 5] = random_quaternions(rng, 1)[0]    # mis-indexed 1-px specks on their boundary
    m = make_map(q)
    ks = channels(m, ks_aggregate=aggregate)[3]
    assert ks[0, 0] < 0.01 and ks[0, 9] < 0.01           # the laths read about 0 deg
    assert ks[2, 4] == pytest.approx(20.0) and ks[3, 5] == pytest.approx(20.0)   # the speck: not available
    gr = segment_grains(m)
    assert gr.n == 4                                     # two laths, two 1-px specks
    if aggregate == "boundary_mean":                     # counted as neighbours, specks would pull the laths up
        with_specks = grain_ks_deviation(gr, aggregate, min_grain_px=1)
        assert with_specks[gr.labels[0, 0]] > 0.3


def test_grain_centre_is_farthest_from_the_boundary():
    g = random_quaternions(np.random.default_rng(3), 2)
    q = np.zeros((15, 30, 4))
    q[:] = g[0]
    q[2:13, 10:21] = g[1]  # an 11 x 11 inner grain: centre (7, 15)
    gr = segment_grains(make_map(q))
    c = grain_centres(gr)[gr.labels[7, 15]]
    assert tuple(c) == (7, 15)


def test_patches_mask_padding_and_scaling():
    g = random_quaternions(np.random.default_rng(4), 2)
    q = np.zeros((20, 24, 4))
    q[:] = g[0]
    q[5:15, 6:18] = g[1]
    iq = np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)
    m = make_map(q, iq=iq)
    p, info = extract_patches(m, size=24, min_grain_px=5, return_info=True)
    assert p.dtype == np.uint8 and p.shape == (2, 5, 24, 24)
    inner = int(np.flatnonzero(info["grain"] == segment_grains(m).labels[10, 12])[0])
    mask = p[inner, 4]
    assert set(np.unique(mask)) == {0, 255} and (mask == 255).sum() == 10 * 12
    # the window is centred on the grain centre; beyond the map edge: noise values
    corner = p[inner, :, 0, 0]
    assert corner.tolist() == [0, 0, 255, 255, 0]
    assert (p[:, 1] == 85).sum() > 0  # BCC -> 85
    with pytest.raises(ValueError, match="larger than the map"):
        extract_patches(m, size=25)


def test_scale_channels_uses_the_fixed_spec_scalings():
    ch = np.zeros((5, 1, 5), np.float32)
    ch[0, 0] = [0, 0.5, 1, 1.2, -1]
    ch[1, 0] = [0, 1, 2, 3, 0]
    ch[2, 0] = [0, 1.4, 3, 3.5, 0]
    ch[3, 0] = [0, 10, 15, 20, 0]
    ch[4, 0] = [0, 1, 1, 0, 0]
    s = scale_channels(ch)
    assert s[0, 0].tolist() == [0, 128, 255, 255, 0]
    assert s[1, 0].tolist() == [0, 85, 170, 255, 0]
    assert s[2, 0].tolist() == [0, 102, 219, 255, 0]
    assert s[3, 0].tolist() == [0, 128, 191, 255, 0]
    assert s[4, 0].tolist() == [0, 255, 255, 0, 0]


def test_empty_map_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        OrientationMap(np.zeros((0, 0, 4)), np.zeros((0, 0)), np.zeros((0, 0)))


def test_symmetry_equivalent_input_gives_identical_channels():
    rng = np.random.default_rng(5)
    parent = random_quaternions(rng, 1)[0]
    v = ks_variants(parent)
    m1 = _bicrystal(v[0], v[9])
    q2 = m1.quat.copy()
    q2[:, :5] = quat_multiply(CUBIC_SYMMETRY[7], q2[:, :5])
    q2[:, 5:] *= -1
    m2 = make_map(q2)
    assert np.allclose(channels(m1), channels(m2), atol=1e-4)
