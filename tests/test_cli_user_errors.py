"""Every user mistake in a `qgan` command: exit 2, one line `qgan: error: ...` naming the path, no traceback."""
import os
import subprocess
import sys

import pytest

import qgan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(qgan.__file__)))  # the qgan these tests import


def qgan(tmp_path, *args):
    """Run the real `qgan` command in a subprocess (cwd and dataset cache in tmp_path)."""
    env = {**os.environ, "QGAN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("QGAN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "qgan.cli", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def error_line(res) -> str:
    """The one stderr line of a refused command (asserts exit 2, one line, no traceback)."""
    lines = res.stderr.splitlines()
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1 and lines[0].startswith("qgan: error: "), res.stderr
    return lines[0]


def test_unparsable_set_value_is_one_line_naming_the_key(tmp_path):
    line = error_line(qgan(tmp_path, "train", "--set", "n=[1", "--out", tmp_path / "t", "--quiet"))
    assert "--set n: cannot parse value '[1'" in line
    assert not (tmp_path / "t").exists()


def read_only_dir(path):
    """A folder made read-only (0o500); skips the test where that does not stop writing (root)."""
    path.mkdir()
    path.chmod(0o500)
    if os.access(path, os.W_OK):
        path.chmod(0o700)
        pytest.skip("running as root: a read-only folder is still writable")
    return path


# ------------------------------------------------------------------------------------------------ qgan train
def test_resume_without_a_checkpoint_is_refused_and_starts_nothing(tmp_path):
    line = error_line(qgan(tmp_path, "train", "--resume", "--out", "NEWDIR", "--quiet"))
    assert "NEWDIR: no checkpoint to resume" in line and "run without --resume" in line
    assert not (tmp_path / "NEWDIR").exists()


def test_resume_of_a_trial_with_a_config_but_no_checkpoint_points_to_that_config(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text('{"n": 3}')
    line = error_line(qgan(tmp_path, "train", "--resume", "--out", "old", "--quiet"))
    assert "old: no checkpoint to resume" in line and "--config old/config.json" in line
    assert os.listdir(tmp_path / "old") == ["config.json"]


CONFIGS = {  # file name, content, what the error says
    "missing": ("missing.yaml", None, "no such config file"),
    "folder": ("folder.yaml", "DIR", "is a directory, not a config file"),
    "binary": ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
    "not json": ("c.json", "{n: 3", "not valid JSON (line 1, column 2"),
    "not yaml": ("c.yaml", "n: [3\n", "not valid YAML (line 2, column 1"),
    "not a mapping": ("c.yaml", "just some words\n", "it reads as plain text"),
    "unknown field": ("c.yaml", "n: 3\nlambda: 2\n", "unknown config key(s): lambda"),
    "bad value": ("c.yaml", "n: 99\n", "n must lie in 1..26"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config_file_names_the_file_and_the_problem(tmp_path, case):
    name, content, needle = CONFIGS[case]
    if content == "DIR":
        (tmp_path / name).mkdir()
    elif isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content is not None:
        (tmp_path / name).write_text(content)
    line = error_line(qgan(tmp_path, "train", "--config", name, "--out", "t", "--quiet"))
    assert line.startswith(f"qgan: error: {name}: ") and needle in line, line
    assert not (tmp_path / "t").exists()


def test_bad_set_value_is_blamed_on_set_not_on_the_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("n: 3\n")
    line = error_line(qgan(tmp_path, "train", "--config", "c.yaml", "--set", "n=abc", "--out", "t", "--quiet"))
    assert line == "qgan: error: --set: n must be an integer, got 'abc'"


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = error_line(qgan(tmp_path, "train", "--out", "afile", "--quiet"))
    assert line == "qgan: error: afile: is a file; --out must be a directory"


def test_unwritable_out_is_refused_before_training(tmp_path):
    read_only_dir(tmp_path / "ro")
    line = error_line(qgan(tmp_path, "train", "--out", "ro/trial", "--quiet"))
    assert "ro/trial: cannot write the trial there" in line and str(tmp_path / "ro") in line


# ------------------------------------------------------------------------------------------------- qgan data
BINARY = bytes(range(256)) * 8 + b"\x89PNG\r\n\x1a\n"  # NULs, control bytes, invalid UTF-8


@pytest.mark.parametrize("command, name", [("import", "map.txt"), ("import", "map.ang"), ("stats", "map.ctf")])
def test_binary_map_is_not_a_text_ebsd_map_and_its_bytes_are_not_printed(tmp_path, command, name):
    (tmp_path / name).write_bytes(BINARY)
    args = ["data", command, name] + (["--label", "x", "--out", "o.npz"] if command == "import" else [])
    line = error_line(qgan(tmp_path, *args))
    assert line == (f"qgan: error: {name}: not a text EBSD map (the file holds binary data); expected a text .ang, "
                    ".ctf or .txt export")
    assert not (tmp_path / "o.npz").exists()


def test_unreadable_map_is_named(tmp_path):
    (tmp_path / "map.ang").write_text("# header\n1 2 3 4 5 6 7 8\n")
    (tmp_path / "map.ang").chmod(0)
    if os.access(tmp_path / "map.ang", os.R_OK):
        pytest.skip("running as root: an unreadable file is still readable")
    line = error_line(qgan(tmp_path, "data", "import", "map.ang", "--label", "x", "--out", "o.npz"))
    assert line == "qgan: error: map.ang: cannot read the file (permission denied)"


def test_unwritable_import_out_names_the_users_path_not_a_temp_file(tmp_path):
    (tmp_path / "map.ang").write_bytes(b"")  # never read: the output is checked first
    read_only_dir(tmp_path / "ro")
    line = error_line(qgan(tmp_path, "data", "import", "map.ang", "--label", "x", "--out", "ro/o.npz"))
    assert line == f"qgan: error: ro/o.npz: cannot write there (directory {tmp_path / 'ro'} is not writable)"
    assert ".tmp" not in line


@pytest.mark.parametrize("args", [["data", "import", "map.ang", "--label", "x", "--out", "o.npz"],
                                  ["data", "synth", "--phase", "ferrite", "--count", "2", "--out", "o.npz"]])
def test_out_that_is_a_directory_names_the_users_path_not_a_temp_file(tmp_path, args):
    (tmp_path / "map.ang").write_bytes(b"")
    (tmp_path / "o.npz").mkdir()
    line = error_line(qgan(tmp_path, *args))
    assert line == "qgan: error: o.npz: is a directory; the output must be a file"


NPZ = {  # file name, content, what the error says
    "missing": ("missing.npz", None, "no such"),
    "directory": ("d.npz", "DIR", "is a directory, not a dataset .npz"),
    "not a zip": ("junk.npz", b"junk\n", "not a dataset .npz (not a zip archive)"),
}


@pytest.mark.parametrize("case", list(NPZ))
@pytest.mark.parametrize("command", ["show", "stats", "synth --edges-like", "train data_source"])
def test_bad_dataset_npz_is_one_line_naming_the_file(tmp_path, case, command):
    name, content, needle = NPZ[case]
    if content == "DIR":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    args = {"show": ["data", "show", name, "--out", "m.png"],
            "stats": ["data", "stats", name],
            "synth --edges-like": ["data", "synth", "--phase", "ferrite", "--count", "2", "--edges-like", name,
                                   "--out", "o.npz"],
            "train data_source": ["train", "--set", f"data_source={name}", "--set", "epochs=1", "--out", "t",
                                  "--quiet"]}[command]
    line = error_line(qgan(tmp_path, *args))
    assert line.startswith(f"qgan: error: {name}: ") and needle in line, line
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "o.npz").exists()


def test_calibrate_with_a_missing_maps_directory_names_it(tmp_path):
    line = error_line(qgan(tmp_path, "data", "calibrate", "--shared-dir", "nowhere", "--quiet"))
    assert line == "qgan: error: nowhere: no such directory of real EBSD maps (--shared-dir or $QGAN_SHARED_DIR)"


@pytest.mark.parametrize("args, message", [
    (["data", "show", "d.npz", "--out", "m.png", "--n", "0"], "--n must be positive, got 0"),
    (["data", "calibrate", "--maps", "0", "--out", "m.md"], "--maps must be positive, got 0"),
])
def test_non_positive_counts_are_refused_instead_of_writing_an_empty_result(tmp_path, args, message):
    from conftest import write_random_dataset

    write_random_dataset(tmp_path / "d.npz", 2)
    assert error_line(qgan(tmp_path, *args)) == f"qgan: error: {message}"
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "m.md").exists()
