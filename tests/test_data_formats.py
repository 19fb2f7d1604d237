"""EBSD file formats read without orix: agreement with orix, hexagonal steps from the header, confidence
filtering, the OIM grain file, point-group checks, IQ sources and error messages that quote the file."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from qgan.data import load_map
from qgan.data.calibrate import shared_ebsd_dir
from qgan.data.io import BCC, FCC, NOISE, OTHER, _finish, classify_phase
from qgan.data.orientation import quat_from_euler

EBSD = shared_ebsd_dir()
needs_maps = pytest.mark.skipif(not os.path.isdir(EBSD), reason=f"real maps not found at {EBSD}")
ANG = ["mtex_DC06_2uniax.ang", "mtex_aachen_iron_sq.ang", "pyebsd_ADI_bcc_fcc_cropped.ang",
       "sdss_ferrite_austenite.ang"]


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


@needs_maps
@pytest.mark.parametrize("name", ANG)
def test_native_ang_reader_agrees_with_orix(name):
    from orix import io as oio

    path = os.path.join(EBSD, name)
    ours = load_map(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            xmap = oio.load(path)
    ids = np.asarray(xmap.phase_id)
    phase = np.zeros(len(ids), np.int8)
    for pid, ph in xmap.phases:
        phase[ids == pid] = NOISE if pid < 0 else classify_phase(float(ph.structure.lattice.a), ph.name)
    q = np.asarray(xmap.rotations.data, float)
    q[phase == NOISE] = [1.0, 0, 0, 0]
    iq = np.asarray(xmap.prop["iq"] if "iq" in xmap.prop else xmap.prop["image_quality"], float)
    ref = _finish(path, xmap.x, xmap.y, q, phase, iq, None, step=ours.step,
                  hexgrid=ours.info["grid"] == "hexagonal")
    assert ours.shape == ref.shape
    assert np.array_equal(ours.phase, ref.phase)
    assert np.array_equal(ours.iq, ref.iq)
    ok = ours.phase > 0
    assert np.abs(np.sum(ours.quat[ok] * ref.quat[ok], axis=-1)).min() > 1 - 1e-12


def _hex_ang(rows=5, odd=4, even=3, y_digits=5, ci=None, header_extra=""):
    head = ["# TEM_PIXperUM 1.0", "# Phase 1", "# MaterialName  \tIron (Alpha)", "# Formula \tFe",
            "# Symmetry              43", "# LatticeConstants      2.870 2.870 2.870  90.000  90.000  90.000",
            "# GRID: HexGrid", "# XSTEP: 0.100000", "# YSTEP: 0.086603", f"# NCOLS_ODD: {odd}",
            f"# NCOLS_EVEN: {even}", f"# NROWS: {rows}", "#"]
    lines, k = [], 0
    for r in range(rows):
        n = odd if r % 2 == 0 else even
        for j in range(n):
            x = 0.1 * j + (0.05 if r % 2 else 0.0)
            c = 0.9 if ci is None else ci[k]
            lines.append(f"0.1 0.2 0.3 {x:.5f} {r * 0.0866025:.{y_digits}f} {float(k):.1f} {c:.3f} 1 1 0.5")
            k += 1
    return "\n".join(head + [header_extra] + lines) + "\n"


def test_hexagonal_step_comes_from_the_header_and_ties_go_left(tmp_path):
    m = load_map(_write(tmp_path / "hex.ang", _hex_ang()))
    assert m.step == 0.1 and m.info["grid"] == "hexagonal"
    # square rows y = 0, 0.1, 0.2, 0.3 -> hex rows 0, 1, 2, 3 (nearest); hex row r starts at point index 4r - r//2
    assert m.shape == (4, 4)
    start = [0, 4, 7, 11]
    # row 0 is an unshifted hex row: pixel j is hex point j
    assert m.iq[0].tolist() == [0, 1, 2, 3]
    # row 1 lies on a shifted hex row (x = 0.05, 0.15, 0.25): x = 0.1 j is halfway, the tie goes left
    assert m.iq[1].tolist() == [start[1] + 0, start[1] + 0, start[1] + 1, start[1] + 2]
    assert m.iq[2].tolist() == [start[2] + j for j in range(4)]


def test_confidence_filter_turns_low_ci_points_into_noise_and_reports_the_share(tmp_path):
    ci = np.full(18, 0.9)
    ci[[0, 5, 6]] = 0.05
    path = _write(tmp_path / "ci.ang", _hex_ang(ci=ci))
    plain = load_map(path)
    assert plain.ci is not None and (plain.phase == BCC).all() and "ci_min" not in plain.info
    m = load_map(path, ci_min=0.1)
    assert m.info["ci_min"] == 0.1 and m.info["ci_removed_frac"] == pytest.approx(3 / 18)
    assert m.phase[0, 0] == NOISE and (m.phase == NOISE).sum() >= 3
    assert np.array_equal(m.quat[m.phase == NOISE], np.tile([1.0, 0, 0, 0], ((m.phase == NOISE).sum(), 1)))


@needs_maps
def test_confidence_filter_on_the_adi_map_and_files_without_ci(tmp_path):
    adi = os.path.join(EBSD, "pyebsd_ADI_bcc_fcc_cropped.ang")
    m = load_map(adi, ci_min=0.1)
    assert m.info["ci_removed_frac"] == pytest.approx(0.043, abs=0.003)
    assert m.phase_fractions()["noise"] == pytest.approx(0.051, abs=0.004)
    with pytest.raises(ValueError, match=r"sdss_ferrite_austenite.ang: .*CI column.*emsoft"):
        load_map(os.path.join(EBSD, "sdss_ferrite_austenite.ang"), ci_min=0.1)
    with pytest.raises(ValueError, match=r"oxford.txt: .*CI column"):
        load_map(os.path.join(EBSD, "mtex_aachen_iron_oxford.txt"), ci_min=0.1)


GRAIN_HEAD = """# Header:    Project1::Scan1::All data::Grain Size  12/01/2026
#
# Column 1-3: phi1, PHI, phi2 (orientation of point in radians)
# Column 4-5: x, y (coordinates of point in microns)
# Column 6:   IQ (image quality)
# Column 7:   CI (confidence index)
# Column 8:   Fit (degrees)
# Column 9:   Grain ID (integer)
# Column 10:  edge (1 for grains at edges of scan and 0 for interior grains)
# Column 11:  phase name
#
"""


def _grain_file(phases, ci):
    rows = []
    rng = np.random.default_rng(0)
    eul = rng.uniform(0, 1, (len(phases), 3))
    for k, (ph, c) in enumerate(zip(phases, ci)):
        x, y = 0.5 * (k % 3), 0.5 * (k // 3)
        rows.append(f"  {eul[k, 0]:.5f}  {eul[k, 1]:.5f}  {eul[k, 2]:.5f}  {x:.5f}  {y:.5f}  {100 + k:.1f}  "
                    f"{c:.3f}  1.2  {k + 1}  0  {ph}")
    return GRAIN_HEAD + "\n".join(rows) + "\n", eul


def test_oim_grain_file_loads_with_phase_names_iq_and_ci(tmp_path):
    names = ["Iron (Alpha)", "Iron (Alpha)", "Iron (Gamma)", "Iron (Alpha)", "Iron (Gamma)", "Iron (Alpha)"]
    text, eul = _grain_file(names, [0.9, 0.05, 0.8, -1, 0.7, 0.6])
    path = _write(tmp_path / "grains.txt", text)
    m = load_map(path)
    assert m.shape == (2, 3) and m.step == pytest.approx(0.5) and m.info["format"] == "oim grain file"
    assert m.phase.tolist() == [[BCC, BCC, FCC], [NOISE, FCC, BCC]]       # CI = -1: not indexed
    assert m.iq.ravel().tolist() == [100, 101, 102, 103, 104, 105]
    q = quat_from_euler(eul)
    assert abs(np.dot(m.quat[0, 2], q[2])) == pytest.approx(1.0)
    f = load_map(path, ci_min=0.1)
    assert f.phase[0, 1] == NOISE and f.info["ci_removed_frac"] == pytest.approx(1 / 6)
    # numeric phase ids (older exports): the phase_map decides, a single id is the one (BCC) phase
    num, _ = _grain_file(["1"] * 6, [0.9] * 6)
    assert (load_map(_write(tmp_path / "num.txt", num)).phase == BCC).all()
    two, _ = _grain_file(["1", "2", "1", "2", "1", "2"], [0.9] * 6)
    assert load_map(_write(tmp_path / "two.txt", two), phase_map={1: BCC, 2: FCC}).phase[0].tolist() == [1, 2, 1]


def test_non_cubic_phases_are_other_whatever_their_lattice_constant(tmp_path):
    assert classify_phase(2.95, "Titanium", cubic=False) == OTHER
    assert classify_phase(2.87, "Iron (Alpha)", cubic=True) == BCC
    assert classify_phase(2.87, "Iron (Alpha)") == BCC
    hcp = _hex_ang().replace("# Symmetry              43", "# Symmetry              62").replace(
        "2.870 2.870 2.870  90.000  90.000  90.000", "2.950 2.950 4.680  90.000  90.000 120.000")
    assert (load_map(_write(tmp_path / "ti.ang", hcp)).phase == OTHER).all()
    cubic_code_other_lattice = _hex_ang().replace("# Symmetry              43", "# Symmetry              62")
    assert (load_map(_write(tmp_path / "sym.ang", cubic_code_other_lattice)).phase == OTHER).all()


def _ctf(phase_line, rows):
    head = ["Channel Text File", "Prj\ttest", "JobMode\tGrid", "XCells\t2", "YCells\t1", "XStep\t0.5", "YStep\t0.5",
            "Phases\t1", phase_line, "Phase\tX\tY\tBands\tError\tEuler1\tEuler2\tEuler3\tMAD\tBC\tBS"]
    return "\n".join(head + rows) + "\n"


def test_ctf_point_group_check(tmp_path):
    rows = ["1\t0\t0\t8\t0\t10\t20\t30\t0.5\t100\t90", "1\t0.5\t0\t8\t0\t10\t20\t30\t0.5\t101\t90"]
    hexa = _ctf("2.95;2.95;4.68\t90;90;120\tTitanium\t9\t194", rows)
    assert (load_map(_write(tmp_path / "ti.ctf", hexa)).phase == OTHER).all()
    cubic = _ctf("2.87;2.87;2.87\t90;90;90\tIron bcc\t11\t229", rows)
    m = load_map(_write(tmp_path / "fe.ctf", cubic))
    assert (m.phase == BCC).all() and m.iq.tolist() == [[100, 101]]


def test_oxford_text_iq_is_band_contrast_never_mad(tmp_path):
    head = "Index\tPhase\tX\tY\tEuler1\tEuler2\tEuler3\tMAD\n"
    rows = "".join(f"{i}\t1\t{i % 3}\t{i // 3}\t10\t20\t30\t0.{i + 1}\n" for i in range(6))
    m = load_map(_write(tmp_path / "mad.txt", head + rows))
    assert (m.iq == 1.0).all()                          # no band contrast column: constant IQ, not MAD
    head_bc = "Index\tPhase\tX\tY\tEuler1\tEuler2\tEuler3\tMAD\tBC\n"
    rows_bc = "".join(f"{i}\t1\t{i % 3}\t{i // 3}\t10\t20\t30\t0.{i + 1}\t{50 + i}\n" for i in range(6))
    assert load_map(_write(tmp_path / "bc.txt", head_bc + rows_bc)).iq.ravel().tolist() == [50, 51, 52, 53, 54, 55]


def test_error_messages_quote_the_file_as_it_is(tmp_path):
    p = _write(tmp_path / "Notes.txt", "Sample ID\tOperator NAME\n1\t2\n")
    with pytest.raises(ValueError) as exc:
        load_map(p)
    msg = str(exc.value)
    assert msg.startswith(p) and "'Sample ID\\tOperator NAME'" in msg and "\n" not in msg


def test_loading_a_map_does_not_import_orix(tmp_path):
    path = _write(tmp_path / "hex.ang", _hex_ang())
    code = ("import sys; from qgan.data import load_map, extract_patches; load_map(sys.argv[1]); "
            "import qgan.cli; qgan.cli.build_parser(); "
            "bad = [m for m in ('orix', 'matplotlib', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.returncode == 0, res.stdout + res.stderr


def test_lazy_package_exports_are_the_functions_even_after_their_modules_load():
    import qgan.data
    import qgan.data.channels  # noqa: F401  (a submodule named like the exported function)
    from qgan.data import channels, load_map

    assert callable(channels) and channels.__module__ == "qgan.data.channels"
    assert callable(load_map) and qgan.data.channels is channels
