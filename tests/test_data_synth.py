"""Synthetic generator: determinism, format, and the ferrite / bainite contrast through the channel pipeline."""
import numpy as np
import pytest

from qgan.data import synth_patches, synthesize_map
from qgan.data.calibrate import map_statistics
from qgan.data.synthetic import BainiteParams, FerriteParams, params_for

SMALL_F = FerriteParams(map_px=96, patches_per_map=16)
SMALL_B = BainiteParams(map_px=96, pag_px=60, packet_px=30, patches_per_map=16)


def test_synth_patches_are_deterministic_by_seed():
    a = synth_patches("ferrite", 40, seed=5, params=SMALL_F, workers=1)
    b = synth_patches("ferrite", 40, seed=5, params=SMALL_F, workers=1)
    c = synth_patches("ferrite", 40, seed=6, params=SMALL_F, workers=1)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_synth_patches_do_not_depend_on_the_worker_count():
    a = synth_patches("bainite", 50, seed=2, params=SMALL_B, workers=1)
    b = synth_patches("bainite", 50, seed=2, params=SMALL_B, workers=2)
    assert a.tobytes() == b.tobytes()


def test_synth_patches_have_the_dataset_format():
    p = synth_patches("bainite", 20, seed=0, params=SMALL_B)
    assert p.shape == (20, 5, 60, 60) and p.dtype == np.uint8
    assert set(np.unique(p[:, 1])) <= {0, 85, 170, 255}
    assert set(np.unique(p[:, 4])) == {0, 255}
    # the centre pixel of every patch belongs to its central grain
    assert (p[:, 4, 30, 30] == 255).all()
    # every patch is centred on a BCC grain
    assert (p[:, 1, 30, 30] == 85).all()


def test_default_generator_produces_the_requested_count_fast():
    import time

    t = time.perf_counter()
    p = synth_patches("ferrite", 150, seed=1)
    assert len(p) == 150
    assert time.perf_counter() - t < 30  # ~2 s on an idle core


def test_ferrite_and_bainite_differ_as_real_steels_do():
    f = map_statistics(synthesize_map("ferrite", np.random.default_rng(0)))
    b = map_statistics(synthesize_map("bainite", np.random.default_rng(0)))
    assert f["fcc_frac"] == 0 and b["fcc_frac"] > 0.1           # retained austenite films
    assert b["kam_mean"] > 1.4 * f["kam_mean"]                  # higher in-grain misorientation
    assert b["ks_share5"] > f["ks_share5"] + 0.1                # KS-related laths
    assert b["ks_median"] < f["ks_median"]
    assert b["grain_px"] < f["grain_px"]                        # laths smaller than ferrite grains
    assert 0 < f["noise_frac"] < 0.1 and 0 < b["noise_frac"] < 0.1


def test_synthetic_maps_have_real_spatial_structure():
    # real maps: KAM concentrates at boundaries (ratio 1.1-1.9), unindexed pixels cluster (0.73-0.80 have an
    # unindexed neighbour), ADI's austenite is blocky (51 % of FCC pixels inside a block, films ~20 %)
    f = map_statistics(synthesize_map("ferrite", np.random.default_rng(3)))
    b = map_statistics(synthesize_map("bainite", np.random.default_rng(3)))
    assert f["kam_boundary_ratio"] > 1.3 and b["kam_boundary_ratio"] > 1.05
    assert f["noise_clustered"] > 0.6 and b["noise_clustered"] > 0.5
    assert b["fcc_interior"] > 0.4


def test_unknown_phase_and_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="unknown phase"):
        synth_patches("martensite", 5, 0)
    with pytest.raises(ValueError, match="unknown ferrite generator parameter"):
        params_for("ferrite", {"grain_size": 3})
    with pytest.raises(ValueError, match="count"):
        synth_patches("ferrite", -1, 0)
