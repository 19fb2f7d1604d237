"""Dataset files and the content-keyed cache."""
import multiprocessing as mp
import os

import numpy as np
import pytest

from qgan.data import Dataset, get_dataset, load_dataset, save_dataset
from qgan.data import dataset as dsmod
from qgan.data.synthetic import FerriteParams

SMALL = FerriteParams(map_px=96, patches_per_map=16)


@pytest.fixture
def small_generator(monkeypatch):
    """Use a small map size so the cache tests run in about a second (defaults are tested elsewhere)."""
    orig = dsmod.params_for
    monkeypatch.setattr(dsmod, "params_for", lambda phase, ov=None: SMALL if phase == "ferrite" else orig(phase, ov))


def test_save_and_load_roundtrip_without_temp_files(tmp_path):
    ds = Dataset(np.arange(2 * 5 * 4 * 4, dtype=np.uint8).reshape(2, 5, 4, 4), np.array(["a", "b"]), {"x": 1})
    path = tmp_path / "d.npz"
    save_dataset(str(path), ds)
    back = load_dataset(str(path))
    assert np.array_equal(back.images, ds.images) and back.labels.tolist() == ["a", "b"] and back.meta == {"x": 1}
    assert os.listdir(tmp_path) == ["d.npz"]


def test_dataset_rejects_bad_arrays_and_files(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        Dataset(np.zeros((2, 5, 4, 4), np.float32), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="labels"):
        Dataset(np.zeros((2, 5, 4, 4), np.uint8), np.array(["a"]))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a qgan dataset"):
        load_dataset(str(tmp_path / "other.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_dataset(str(tmp_path / "junk.npz"))


def test_get_dataset_builds_once_then_reads_the_cache(tmp_path, small_generator, monkeypatch):
    a = get_dataset("ferrite", 20, seed=3, cache_dir=str(tmp_path))
    assert a.images.shape == (20, 5, 60, 60) and set(a.labels) == {"ferrite"}
    assert a.meta["seed"] == 3 and a.meta["source"] == "synthetic" and "generator" in a.meta
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz")

    def boom(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr(dsmod, "synth_patches", boom)
    b = get_dataset("ferrite", 20, seed=3, cache_dir=str(tmp_path))
    assert np.array_equal(a.images, b.images)
    with pytest.raises(AssertionError, match="cache miss"):
        get_dataset("ferrite", 20, seed=4, cache_dir=str(tmp_path))  # another seed is another key


def test_cache_dir_defaults_to_the_environment_variable(tmp_path, small_generator, monkeypatch):
    monkeypatch.setenv("QGAN_CACHE_DIR", str(tmp_path / "cache"))
    get_dataset("ferrite", 5, seed=0)
    assert len(os.listdir(tmp_path / "cache")) == 1


def test_corrupt_cache_entry_is_rebuilt(tmp_path, small_generator):
    a = get_dataset("ferrite", 5, seed=0, cache_dir=str(tmp_path))
    (path,) = [tmp_path / f for f in os.listdir(tmp_path)]
    path.write_bytes(b"garbage")
    b = get_dataset("ferrite", 5, seed=0, cache_dir=str(tmp_path))
    assert np.array_equal(a.images, b.images)


def test_get_dataset_from_a_file_takes_a_seeded_subset_of_the_phase(tmp_path):
    imgs = np.zeros((10, 5, 60, 60), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(10)
    labels = np.array(["ferrite"] * 6 + ["bainite"] * 4)
    src = tmp_path / "src.npz"
    save_dataset(str(src), Dataset(imgs, labels, {}))
    cache = str(tmp_path / "c")
    a = get_dataset("ferrite", 4, seed=1, cache_dir=cache, source=str(src))
    b = get_dataset("ferrite", 4, seed=2, cache_dir=cache, source=str(src))
    assert set(a.images[:, 0, 0, 0]) <= set(range(6)) and len(set(a.images[:, 0, 0, 0])) == 4
    assert a.images[:, 0, 0, 0].tolist() != b.images[:, 0, 0, 0].tolist()
    assert get_dataset("ferrite", 4, seed=1, cache_dir=cache, source=str(src)).images.tobytes() == a.images.tobytes()
    with pytest.raises(ValueError, match="holds 4"):
        get_dataset("bainite", 5, seed=1, cache_dir=cache, source=str(src))
    with pytest.raises(FileNotFoundError):
        get_dataset("bainite", 1, cache_dir=cache, source=str(tmp_path / "nope.npz"))


def test_get_dataset_rejects_unknown_phase_and_bad_count(tmp_path):
    with pytest.raises(ValueError, match="unknown phase"):
        get_dataset("pearlite", 5, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="count"):
        get_dataset("ferrite", 0, cache_dir=str(tmp_path))


def _build(cache_dir, q):
    from qgan.data import dataset as d
    from qgan.data.synthetic import FerriteParams

    small = FerriteParams(map_px=96, patches_per_map=16)
    d.params_for = lambda phase, ov=None: small
    ds = d.get_dataset("ferrite", 30, seed=9, cache_dir=cache_dir)
    q.put(ds.images.tobytes())


def test_concurrent_builders_of_one_key_agree_and_leave_one_valid_file(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(str(tmp_path), q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(results)) == 1
    files = os.listdir(tmp_path)
    assert len(files) == 1 and not files[0].startswith(".tmp")
    assert load_dataset(str(tmp_path / files[0])).images.tobytes() == results[0]
