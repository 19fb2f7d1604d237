"""The sweep driver speaks like a CLI: one throttled progress line, a short end report, one-line user errors."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tempfile
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweeps.progress import SweepProgress

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "n=2", "--set", "train_size=16", "--set", "seed=[0,1]", "--set", "update_every=[1,2]",
        "--set", "epochs=3", "--set", "qcbm_epochs=3", "--set", "width=2", "--set", "n_samples_saved=0",
        "--set", "eval_size=16"]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _trial(tid: str, last: dict | None = None):
    return SimpleNamespace(config={"trial": {"_trial_id": tid}}, last_result=last or {}, error_file="/x/error.txt")


def test_progress_prints_at_most_one_line_per_interval_in_a_log_and_counts_epochs_and_eta():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress({"a": 10, "b": 10}, stream=out, interval_s=30, tty=False, clock=clock)
    p.on_trial_start(0, [], _trial("a"))
    for epoch in range(1, 6):
        clock.t = 2.0 * epoch
        p.on_trial_result(0, [], _trial("a"), {"qgan_trial_id": "a", "epoch": epoch, "trial_status": "running"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # 10 s of results: only the first line, the next is due after 30 s
    clock.t = 40.0
    p.on_trial_result(0, [], _trial("a"), {"qgan_trial_id": "a", "epoch": 6, "trial_status": "running"})
    last = out.getvalue().splitlines()[-1]
    assert "trials 0/2 done, 1 running, 0 failed" in last and "epochs 6/20" in last
    assert p.eta_s() == pytest.approx(14 * 40 / 6)  # 14 epochs left at 6 epochs per 40 s
    assert "ETA 01:33" in last


def test_progress_reports_failures_at_once_and_a_final_line_once():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress({"a": 2, "b": 2}, stream=out, interval_s=1e9, tty=False, clock=clock)
    p.on_trial_result(0, [], _trial("a"), {"qgan_trial_id": "a", "epoch": 2, "trial_status": "completed"})
    p.on_trial_complete(0, [], _trial("a", {"qgan_trial_id": "a", "epoch": 2, "trial_status": "completed"}))
    p.on_trial_result(0, [], _trial("b"), {"qgan_trial_id": "b", "epoch": 0, "trial_status": "failed",
                                           "failure_reason": "invalid config: n must be >= 1"})
    p.on_trial_complete(0, [], _trial("b", {"qgan_trial_id": "b", "trial_status": "failed"}))
    p.close()
    text = out.getvalue()
    assert "trial b failed: invalid config: n must be >= 1" in text
    assert text.count("trials 1/2 done, 0 running, 1 failed") == 1  # the end is said once, not twice


def test_progress_of_a_resumed_run_counts_finished_trials_and_an_early_stop_shortens_the_total():
    out, clock = io.StringIO(), Clock()
    p = SweepProgress({"a": 4, "b": 4, "c": 4}, {"a": 4}, stream=out, tty=False, clock=clock)
    assert p.line().startswith("[00:00] trials 1/3 done") and "epochs 4/12" in p.line()
    p.on_trial_result(0, [], _trial("b"), {"qgan_trial_id": "b", "epoch": 1, "trial_status": "running"})
    p.on_trial_complete(0, [], _trial("b", {"qgan_trial_id": "b", "epoch": 1, "trial_status": "running"}))
    assert p.epochs_total() == 9 and "trials 2/3 done" in p.line()


def test_progress_of_a_search_grows_its_totals_as_trials_appear():
    p = SweepProgress({}, expected=3, epochs_each=5, stream=io.StringIO(), tty=False, clock=Clock())
    assert p.epochs_total() == 15
    p.on_trial_result(0, [], _trial("x"), {"qgan_trial_id": "x", "epoch": 2})
    assert p.epochs_total() == 15 and p.epochs_done() == 2 and p.n_trials() == 3


def test_progress_draws_a_bar_on_a_terminal():
    out = io.StringIO()
    p = SweepProgress({"a": 3}, stream=out, tty=True, clock=Clock())
    p.on_trial_result(0, [], _trial("a"), {"qgan_trial_id": "a", "epoch": 2})
    p.close()
    assert "2/3" in out.getvalue() and "epoch" in out.getvalue() and "trials 0/1 done" in out.getvalue()


def test_progress_pickles_without_its_stream_for_tunes_saved_state():
    p = SweepProgress({"a": 3}, stream=io.StringIO(), tty=False, clock=Clock())
    q = pickle.loads(pickle.dumps(p))
    assert q.total == {"a": 3} and q.stream is sys.stdout


def _run(args: list[str], timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "sweeps/ferrite.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def test_an_unwritable_storage_is_one_line_before_ray_starts(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores the mode: use a path under a file instead
        target = tmp_path / "file"
        target.write_text("")
        storage = str(target / "runs")
    else:
        storage = str(ro / "runs")
    out = _run(["--storage", storage, "--name", "x", *TINY], timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweeps: error: cannot write to ") and "Traceback" not in out.stderr
    assert "ray: " not in out.stdout  # refused before Ray was started


@pytest.mark.slow
def test_a_sweep_prints_a_short_report_with_progress_and_the_next_command(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="qgp-", dir="/tmp")
    try:
        out = _run(["--storage", str(tmp_path), "--name", "quiet", "--num-cpus", "2", "--ray-temp-dir", temp_dir,
                    "--local", *TINY])
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    lines = text.strip().splitlines()
    assert len(lines) < 25, text  # 6 trials: no per-trial boxes, no snapshot warnings, no TensorBoard hint
    assert "Configuration for experiment" not in text and "snapshotting" not in text and "tensorboard" not in text
    run_dir = tmp_path / "quiet"
    assert lines[1] == f"results: {run_dir}"  # said at the start ...
    assert any("trials 6/6 done, 0 running, 0 failed | epochs 18/18" in line for line in lines), text
    assert f"next: python -m analysis {run_dir}" in lines[-1]  # ... and the next command at the end
    assert "trials: 6 completed" in text and (run_dir / "status.tsv").read_text().count("\tcompleted\t") == 6


@pytest.mark.slow
def test_mlflow_flag_logs_every_trial_to_a_local_tracking_store(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    temp_dir = tempfile.mkdtemp(prefix="qgm-", dir="/tmp")
    try:
        out = _run(["--storage", str(tmp_path), "--name", "tracked", "--num-cpus", "2", "--ray-temp-dir", temp_dir,
                    "--local", "--mlflow", uri, "--set", "n=2", "--set", "train_size=16", "--set", "seed=0",
                    "--set", "update_every=1", "--set", "epochs=2", "--set", "qcbm_epochs=2", "--set", "width=2",
                    "--set", "n_samples_saved=0", "--set", "eval_size=16"])
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tracked")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name.split("-")[1] for r in runs) == ["bernoulli", "qcbm"]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(r.info.run_id, "mmd")] == [1, 2]
