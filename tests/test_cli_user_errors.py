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
