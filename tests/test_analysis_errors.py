"""User mistakes with `python -m analysis` end in one line `analysis: error: ...` and exit status 2."""
import errno
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.fakerun import BASE_CONFIG, make_run, write_trial
from analysis.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny completed run (ferrite, n=4, two seeds, Bernoulli and QCBM)."""
    root = tmp_path_factory.mktemp("errors") / "run"
    make_run(root, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=3)
    return root


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args), "--quiet", "--bootstrap", "50",
                           "--no-figures"], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def _one_line_error(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("analysis: error: "), res.stderr
    return lines[0]


def _file(tmp, run):
    (tmp / "notes.txt").write_text("hello")
    return [tmp / "notes.txt"], "is a file, not a run folder"


def _trial_file(tmp, run):
    trial = next(run.iterdir())
    return [trial / "summary.json"], f"did you mean its folder '{trial}'"


def _missing(tmp, run):
    return [tmp / "nope"], "does not exist"


def _empty(tmp, run):
    (tmp / "empty").mkdir()
    return [tmp / "empty"], "no trial folder (a folder with config.json and summary.json) anywhere below"


def _not_a_run(tmp, run):
    (tmp / "photos").mkdir()
    (tmp / "photos" / "a.png").write_bytes(b"x")
    return [tmp / "photos"], "it holds 1 other entry"


def _output_folder(tmp, run):
    (tmp / "an").mkdir()
    (tmp / "an" / "report.md").write_text("# Analysis")
    return [tmp / "an"], "is an analysis output folder"


def _no_completed(tmp, run):
    for s in range(2):
        write_trial(tmp / "failed" / f"t{s}", dict(BASE_CONFIG, seed=s, trial_id=f"t{s}"), [1.0], status="failed",
                    failure_reason="boom")
    return [tmp / "failed"], "no completed trial"


def _out_is_file(tmp, run):
    (tmp / "out.txt").write_text("keep me")
    return [run, "--out", tmp / "out.txt"], "out.txt' is a file, not a folder"


def _out_below_file(tmp, run):
    (tmp / "out.txt").write_text("keep me")
    return [run, "--out", tmp / "out.txt" / "analysis"], "out.txt' is a file, not a folder"


def _ignore_field_typo(tmp, run):
    return [run, "--out", tmp / "o", "--ignore-field", "qcbm_l"], "did you mean 'qcbm_lr'"


def _bad_confidence(tmp, run):
    return [run, "--out", tmp / "o", "--confidence", "1.5"], "--confidence must lie in (0, 1)"


@pytest.mark.parametrize("case", [_file, _trial_file, _missing, _empty, _not_a_run, _output_folder, _no_completed,
                                  _out_is_file, _out_below_file, _ignore_field_typo, _bad_confidence],
                         ids=lambda f: f.__name__.strip("_"))
def test_user_mistake_is_one_line_and_exit_2(case, tmp_path, run):
    args, expected = case(tmp_path, run)
    line = _one_line_error(_cli(*args, cwd=tmp_path))
    assert expected in line, line
    assert not (tmp_path / "o").exists() and not (run / "analysis").exists(), "wrote output despite the error"
    if (tmp_path / "out.txt").exists():
        assert (tmp_path / "out.txt").read_text() == "keep me"


def test_out_folder_without_write_permission_is_one_line_before_reading_the_run(tmp_path, run, monkeypatch,
                                                                                capsys):
    # as root every folder is writable, so the permission answer is faked; the check must name the folder
    import analysis.main as am

    monkeypatch.setattr(am.os, "access", lambda path, mode: False)
    monkeypatch.setattr(am, "collect", lambda *a, **k: pytest.fail("read the run before checking --out"))
    assert main([str(run), "--out", str(tmp_path / "ro" / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{tmp_path}' is not writable (permission denied)" in err


def test_write_failing_midway_is_one_line_with_the_reason(tmp_path, run, monkeypatch, capsys):
    # a read-only or full disk shows up only when writing; that OSError type is not one run_cli knows
    import analysis.main as am

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(am, "write_parquet", refuse)
    assert main([str(run), "--quiet", "--no-figures", "--bootstrap", "50"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("analysis: error: cannot write to output folder") and "Read-only file system" in err
    assert "choose another folder with --out DIR" in err          # the default RUN/analysis was refused
