"""Real-map import: every shared map loads and behaves as the README expects; bad files fail clearly.

The maps live in <repo>/../shared/data/ebsd (override: $QGAN_SHARED_DIR/data/ebsd)."""
import os

import numpy as np
import pytest

from qgan.data import extract_patches, load_map
from qgan.data.calibrate import map_statistics, shared_ebsd_dir

EBSD = shared_ebsd_dir()
needs_maps = pytest.mark.skipif(not os.path.isdir(EBSD), reason=f"real maps not found at {EBSD}")
MAPS = ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang", "mtex_aachen_iron_oxford.txt",
        "pyebsd_ADI_bcc_fcc_cropped.ang", "sdss_ferrite_austenite.ang"]


@pytest.fixture(scope="module")
def stats():
    return {f: map_statistics(load_map(os.path.join(EBSD, f))) for f in
            ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang", "pyebsd_ADI_bcc_fcc_cropped.ang"]}


@needs_maps
@pytest.mark.parametrize("name", MAPS)
def test_every_shared_map_loads_and_gives_patches(name):
    m = load_map(os.path.join(EBSD, name))
    assert m.quat.shape[:2] == m.phase.shape == m.iq.shape
    assert np.allclose(np.linalg.norm(m.quat, axis=-1), 1.0)
    p = extract_patches(m)
    assert p.dtype == np.uint8 and p.ndim == 4 and p.shape[1:] == (5, 60, 60) and len(p) >= 10


@needs_maps
def test_hexagonal_adi_map_is_resampled_to_square_with_both_phases():
    m = load_map(os.path.join(EBSD, "pyebsd_ADI_bcc_fcc_cropped.ang"))
    assert m.step == pytest.approx(0.1, rel=1e-3)
    assert m.shape == (156, 178)  # 181 hex rows * 0.0866 um -> 156 square rows; 178 columns
    f = m.phase_fractions()
    assert f["BCC"] == pytest.approx(0.71, abs=0.03) and f["FCC"] == pytest.approx(0.29, abs=0.03)


@needs_maps
def test_phases_are_mapped_by_lattice_constant_not_name():
    m = load_map(os.path.join(EBSD, "sdss_ferrite_austenite.ang"))  # names austenite/ferrite, ids 1/2
    f = m.phase_fractions()
    assert f["BCC"] == pytest.approx(0.52, abs=0.01) and f["FCC"] == pytest.approx(0.48, abs=0.01)


@needs_maps
def test_oxford_text_export_equals_the_square_ang_conversion():
    a = load_map(os.path.join(EBSD, "mtex_aachen_iron_oxford.txt"))
    b = load_map(os.path.join(EBSD, "mtex_aachen_iron_sq.ang"))
    assert a.shape == b.shape == (143, 425)
    assert np.array_equal(a.phase == 0, b.phase == 0)
    ok = a.phase > 0
    dots = np.abs(np.sum(a.quat[ok] * b.quat[ok], axis=-1))
    assert np.quantile(dots, 0.001) > 0.9999


@needs_maps
def test_ferrite_maps_have_low_kam_and_adi_is_bainitic(stats):
    dc06, aachen, adi = (stats[f] for f in ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang",
                                             "pyebsd_ADI_bcc_fcc_cropped.ang"])
    assert dc06["kam_mean"] < 0.5 and aachen["kam_mean"] < 0.5
    # clearly higher in-grain misorientation in the bainitic map
    assert adi["grod_mean"] > 1.5 * max(dc06["grod_mean"], aachen["grod_mean"])
    assert adi["kam_mean"] > max(dc06["kam_mean"], aachen["kam_mean"])
    # larger share of neighbouring BCC grain pairs near a KS inter-variant misorientation
    assert adi["ks_share5"] > max(dc06["ks_share5"], aachen["ks_share5"]) + 0.1


@needs_maps
def test_default_ks_channel_separates_ferrite_from_bainite(stats):
    # median KS channel over BCC grains >= 20 px: each ferrite map at least 1 deg above the bainitic ADI map
    adi = stats["pyebsd_ADI_bcc_fcc_cropped.ang"]["ks_channel_median"]
    for f in ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang"]:
        assert stats[f]["ks_channel_median"] >= adi + 1.0, (f, stats[f]["ks_channel_median"], adi)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@needs_maps
def test_truncated_ang_is_rejected(tmp_path):
    with open(os.path.join(EBSD, "mtex_DC06_2uniax.ang")) as f:
        lines = f.readlines()
    n_header = sum(1 for x in lines if x.startswith("#"))
    p = _write(tmp_path / "cut.ang", "".join(lines[: n_header + 1000]))
    with pytest.raises(ValueError, match="truncated"):
        load_map(p)
    # a row cut in the middle
    p = _write(tmp_path / "cut2.ang", "".join(lines[:-1]) + lines[-1][:20])
    with pytest.raises(ValueError, match="cut2.ang"):
        load_map(p)


@needs_maps
def test_header_only_ang_is_an_empty_map(tmp_path):
    with open(os.path.join(EBSD, "mtex_DC06_2uniax.ang")) as f:
        header = "".join(x for x in f if x.startswith("#"))
    with pytest.raises(ValueError, match="empty"):
        load_map(_write(tmp_path / "empty.ang", header))


def test_files_that_are_not_ebsd_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="nonsense.ang"):
        load_map(_write(tmp_path / "nonsense.ang", "hello world\nthis is not an EBSD map\n"))
    with pytest.raises(ValueError, match="not an Oxford"):
        load_map(_write(tmp_path / "notes.txt", "some notes\n1 2 3\n"))
    with pytest.raises(ValueError, match="unsupported file type"):
        load_map(_write(tmp_path / "image.png", "x"))
    with pytest.raises(ValueError, match="empty"):
        load_map(_write(tmp_path / "zero.ctf", ""))
    with pytest.raises(FileNotFoundError):
        load_map(str(tmp_path / "missing.ang"))


def test_oxford_text_with_only_unindexed_points_is_rejected(tmp_path):
    head = "Index\tPhase\tX\tY\tEuler1\tEuler2\tEuler3\tMAD\tBC\n"
    rows = "".join(f"{i}\t0\t{i % 3}\t{i // 3}\t0\t0\t0\t0\t10\n" for i in range(9))
    with pytest.raises(ValueError, match="no indexed points"):
        load_map(_write(tmp_path / "blank.txt", head + rows))


def _ctf_text(rows):
    head = ["Channel Text File", "Prj\ttest", "Author\tqgan", "JobMode\tGrid", "XCells\t3", "YCells\t2",
            "XStep\t0.5", "YStep\t0.5", "AcqE1\t0", "AcqE2\t0", "AcqE3\t0",
            "Euler angles refer to Sample Coordinate system (CS0)!\tMag\t100\tCoverage\t100\tDevice\t0\tKV\t20",
            "Phases\t2",
            "3.65;3.65;3.65\t90;90;90\tGamma\t11\t225",      # FCC listed first: ids must not decide
            "2.87;2.87;2.87\t90;90;90\tAlpha\t11\t229",
            "Phase\tX\tY\tBands\tError\tEuler1\tEuler2\tEuler3\tMAD\tBC\tBS"]
    return "\n".join(head + rows) + "\n"


def test_ctf_loads_with_phases_by_lattice_constant(tmp_path):
    rows = []
    for j in range(2):
        for i in range(3):
            ph = [2, 2, 1, 0, 2, 1][j * 3 + i]
            rows.append(f"{ph}\t{0.5 * i}\t{0.5 * j}\t8\t0\t10\t20\t{30 + i}\t0.5\t{100 + i}\t90")
    m = load_map(_write(tmp_path / "small.ctf", _ctf_text(rows)))
    assert m.shape == (2, 3) and m.step == pytest.approx(0.5)
    assert m.phase.tolist() == [[1, 1, 2], [0, 1, 2]]   # file phase 2 = 2.87 A = BCC, 1 = 3.65 A = FCC
    assert m.iq[0].tolist() == [100, 101, 102]
