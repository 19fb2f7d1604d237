"""Kill the sweep driver with SIGKILL mid-run, resume with --resume, and count lost / duplicated trials."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 6
# 8 trials: qcbm x update_every {1,2,3} + bernoulli, seeds {0,1}; tiny and quick
GRID = ["--set", "n=2", "--set", "train_size=16", "--set", "seed=[0,1]", "--set", "update_every=[1,2,3]",
        "--set", f"epochs={EPOCHS}", "--set", f"qcbm_epochs={EPOCHS}", "--set", "width=2",
        "--set", "n_samples_saved=0", "--set", "eval_size=16"]


def _ray_procs():
    spec = importlib.util.spec_from_file_location("ray_procs", ROOT / "cluster" / "ray_procs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _summaries(run_dir: Path) -> dict[str, dict]:
    out = {}
    for d in (run_dir / "trials").glob("*"):
        try:
            out[d.name] = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError):
            out[d.name] = {"status": "starting"}
    return out


def _status(run_dir: Path) -> dict[str, str]:
    return {k: v.get("status") for k, v in _summaries(run_dir).items()}


def _kinds(trial_dir: Path) -> list[str]:
    p = trial_dir / "attempts.jsonl"
    return [json.loads(x)["kind"] for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


@pytest.mark.slow
def test_sigkilled_driver_resumes_without_rerunning_or_losing_trials(tmp_path):
    procs = _ray_procs()
    storage = tmp_path / "runs"
    temp_dir = tempfile.mkdtemp(prefix="qgr-", dir="/tmp")  # short: Ray's socket paths have a length limit
    base = [sys.executable, "sweeps/ferrite.py", "--storage", str(storage), "--name", "killme", "--num-cpus", "2",
            "--ray-temp-dir", temp_dir, "--max-concurrent", "2", *GRID]
    work_tmp = tmp_path / "tmp"  # trial scratch dirs of killed workers land here, not in /tmp
    work_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(work_tmp)}
    env.pop("RAY_ADDRESS", None)
    run_dir = storage / "killme"
    log1 = open(tmp_path / "first.log", "w")
    try:
        driver = subprocess.Popen(base, cwd=ROOT, env=env, stdout=log1, stderr=subprocess.STDOUT)
        # wait until some trials are finished and some are not, then kill the driver outright
        deadline = time.time() + 180
        while time.time() < deadline:
            st = _summaries(run_dir) if (run_dir / "trials").exists() else {}
            done = [k for k, v in st.items() if v.get("status") == "completed"]
            midway = [k for k, v in st.items() if v.get("status") == "running" and v.get("epochs_completed")]
            if len(done) >= 2 and midway:
                break
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("sweep made no progress:\n" + (tmp_path / "first.log").read_text()[-3000:])
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        procs.stop(temp_dir, grace=2)  # the embedded Ray of the dead driver (its workers included)
        finished_before = {k for k, v in _status(run_dir).items() if v == "completed"}
        interrupted = [k for k in midway if k not in finished_before]
        kinds_before = {k: _kinds(run_dir / "trials" / k) for k in finished_before}
        assert 2 <= len(finished_before) < 8

        # resume needs no grid flags: the run's own trial configs are restored
        resume_cmd = base[:base.index("--max-concurrent")] + ["--resume"]
        resumed = subprocess.run(resume_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "trials: 8 completed" in resumed.stdout
        assert f"python -m analysis {run_dir}" in resumed.stdout
    finally:
        log1.close()
        procs.stop(temp_dir, grace=2)
        shutil.rmtree(temp_dir, ignore_errors=True)

    trial_dirs = sorted((run_dir / "trials").iterdir())
    assert len(trial_dirs) == 8, "a trial is missing"
    for d in trial_dirs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["status"] == "completed", d.name
        epochs = pd.read_parquet(d / "epochs.parquet")["epoch"].tolist()
        assert epochs == list(range(1, EPOCHS + 1)), (d.name, epochs)
        kinds = _kinds(d)
        if d.name in finished_before:
            # a finished trial never trained again (at most a "skip" when Tune had not yet recorded its end)
            new = kinds[len(kinds_before[d.name]):]
            assert all(k == "skip" for k in new), (d.name, kinds)
    # a trial interrupted after a checkpoint continued from it instead of starting over
    for name in interrupted:
        kinds = _kinds(run_dir / "trials" / name)
        assert kinds.count("start") == 1 and "resume" in kinds, (name, kinds)
