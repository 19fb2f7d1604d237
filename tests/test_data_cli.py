"""`qgan data ...` commands: outputs, determinism, and one-line errors with no partial output."""
import os
import subprocess
import sys

import numpy as np
import pytest

from qgan.data import Dataset, load_dataset, save_dataset
from qgan.data.calibrate import shared_ebsd_dir
from qgan.data.cli import main as data_main
from qgan.data.synthetic import map_shapes_like

EBSD = shared_ebsd_dir()
needs_maps = pytest.mark.skipif(not os.path.isdir(EBSD), reason=f"real maps not found at {EBSD}")
PY = sys.executable


def run_cli(*args):
    """Run through the real `qgan` dispatcher when it imports, else through qgan.data.cli (same handling)."""
    try:
        import qgan.train_cli  # noqa: F401

        code = "import sys; from qgan.cli import main; sys.exit(main(sys.argv[1:]))"
    except ImportError:
        code = "import sys; from qgan.data.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_synth_writes_a_dataset_and_is_byte_identical_for_a_seed(tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.npz", "b.npz", "c.npz"))
    for out, seed in ((a, "4"), (b, "4"), (c, "5")):
        assert data_main(["data", "synth", "--phase", "bainite", "--count", "25", "--seed", seed,
                          "--out", out, "--quiet"]) == 0
    da, db, dc = load_dataset(a), load_dataset(b), load_dataset(c)
    assert da.images.shape == (25, 5, 60, 60) and set(da.labels) == {"bainite"}
    assert da.images.tobytes() == db.images.tobytes() and da.meta == db.meta
    assert open(a, "rb").read() == open(b, "rb").read()  # the files themselves are byte-identical
    assert not np.array_equal(da.images, dc.images)


@needs_maps
def test_import_show_and_stats(tmp_path, capsys):
    out = str(tmp_path / "real.npz")
    maps = [os.path.join(EBSD, f) for f in ("mtex_DC06_2uniax.ang", "sdss_ferrite_austenite.ang")]
    assert data_main(["data", "import", *maps, "--label", "ferrite", "--out", out, "--quiet"]) == 0
    ds = load_dataset(out)
    assert len(ds) > 20 and set(ds.labels) == {"ferrite"} and len(ds.meta["maps"]) == 2
    png = str(tmp_path / "m.png")
    assert data_main(["data", "show", out, "--out", png, "--n", "3"]) == 0
    assert os.path.getsize(png) > 10000
    capsys.readouterr()
    assert data_main(["data", "stats", out]) == 0
    text = capsys.readouterr().out
    assert "kam_mean" in text and "images" in text
    assert data_main(["data", "stats", maps[0]]) == 0
    assert "ks_share5" in capsys.readouterr().out


@needs_maps
def test_bad_inputs_give_one_error_line_exit_2_and_no_output(tmp_path, capsys):
    with open(os.path.join(EBSD, "mtex_DC06_2uniax.ang")) as f:
        lines = f.readlines()
    header = [x for x in lines if x.startswith("#")]
    (tmp_path / "cut.ang").write_text("".join(lines[: len(header) + 500]))
    (tmp_path / "junk.ang").write_text("this is not an EBSD file\n")
    (tmp_path / "empty.ang").write_text("".join(header))
    out = tmp_path / "out.npz"
    cases = [
        (["data", "import", str(tmp_path / "cut.ang"), "--label", "x", "--out", str(out)], "truncated"),
        (["data", "import", str(tmp_path / "junk.ang"), "--label", "x", "--out", str(out)], "junk.ang"),
        (["data", "import", str(tmp_path / "empty.ang"), "--label", "x", "--out", str(out)], "empty"),
        (["data", "import", str(tmp_path / "missing.ang"), "--label", "x", "--out", str(out)], "no such file"),
        (["data", "import", os.path.join(EBSD, "mtex_DC06_2uniax.ang"), "--label", "x", "--size", "500",
          "--out", str(out)], "larger than the map"),
        (["data", "synth", "--phase", "martensite", "--count", "5", "--out", str(out)], "unknown phase"),
        (["data", "synth", "--phase", "ferrite", "--count", "5", "--out", str(tmp_path / "no" / "x.npz")],
         "does not exist"),
        (["data", "show", str(tmp_path / "junk.ang"), "--out", str(tmp_path / "x.png")], "junk.ang"),
    ]
    for i, (args, needle) in enumerate(cases):
        if i == 0:  # once through the real `qgan` executable path (subprocess)
            res = run_cli(*args)
            code, stderr = res.returncode, res.stderr
        else:
            code = data_main(args)
            stderr = capsys.readouterr().err
        assert code == 2, (args, stderr)
        errs = [x for x in stderr.splitlines() if x.startswith("qgan: error:")]
        assert len(errs) == 1 and needle in errs[0], (args, stderr)
        assert "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["cut.ang", "empty.ang", "junk.ang"]


@needs_maps
def test_calibrate_prints_and_writes_the_table(tmp_path, capsys):
    out = str(tmp_path / "cal.csv")
    assert data_main(["data", "calibrate", "--maps", "1", "--quiet", "--out", out]) == 0
    stdout = capsys.readouterr().out
    assert "| ferrite | kam_mean |" in stdout and "| bainite | ks_share5 |" in stdout
    text = open(out).read()
    assert text.startswith("phase,statistic") and "pyebsd_ADI_bcc_fcc_cropped.ang" in text


@needs_maps
def test_import_geometry_ci_filter_and_edge_matched_synthetic_data(tmp_path, capsys):
    from qgan.data.calibrate import dataset_statistics

    dc06 = os.path.join(EBSD, "mtex_DC06_2uniax.ang")
    adi = os.path.join(EBSD, "pyebsd_ADI_bcc_fcc_cropped.ang")
    full, inner, real = (str(tmp_path / n) for n in ("full.npz", "inner.npz", "adi.npz"))
    assert data_main(["data", "import", adi, "--label", "bainite", "--out", real, "--ci-min", "0.1", "--quiet"]) == 0
    meta = load_dataset(real).meta
    assert meta["ci_min"] == 0.1 and 0.03 < meta["maps"][0]["ci_removed_frac"] < 0.06
    assert data_main(["data", "import", adi, "--label", "bainite", "--out", full, "--quiet"]) == 0
    assert data_main(["data", "import", adi, "--label", "bainite", "--out", inner, "--interior-only", "--quiet"]) == 0
    f, i = load_dataset(full), load_dataset(inner)
    sf, si = dataset_statistics(f), dataset_statistics(i)
    # the padding share seen in the images equals the one recorded at extraction; interior windows have none
    assert sf["pad_frac"] == pytest.approx(f.meta["maps"][0]["pad_frac"], abs=2e-3) and sf["pad_frac"] > 0.1
    assert si["pad_frac"] == 0 and 0 < len(i) < len(f) and i.meta["interior_only"]
    capsys.readouterr()
    assert data_main(["data", "stats", full]) == 0
    assert "pad_frac" in capsys.readouterr().out
    # DC06 is 51 px wide: no window fits inside, a clear error and no file
    with_err = data_main(["data", "import", dc06, "--label", "x", "--out", str(tmp_path / "no.npz"), "--interior-only"])
    assert with_err == 2 and "--interior-only" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "no.npz")
    # synthetic maps cut like the real dataset's maps: padding share near the real one
    syn = str(tmp_path / "syn.npz")
    assert data_main(["data", "synth", "--phase", "bainite", "--count", "60", "--edges-like", full, "--out", syn,
                      "--quiet"]) == 0
    s = load_dataset(syn)
    assert s.meta["edges_like"]["map_shapes"] == [[[156, 178], 51.0]]
    assert abs(dataset_statistics(s)["pad_frac"] - sf["pad_frac"]) < 0.1
    plain = str(tmp_path / "plain.npz")
    save_dataset(plain, Dataset(np.zeros((1, 5, 60, 60), np.uint8), np.array(["x"]), {}))
    with pytest.raises(ValueError, match="no source map sizes"):
        map_shapes_like(plain)
