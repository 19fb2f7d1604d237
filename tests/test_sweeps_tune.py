"""sweeps/tune.py --preset smoke: an Optuna search of >= 6 trials that writes a usable best config."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from sweeps import presets as P
from sweeps.tune import SEARCHED

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_optuna_smoke_search_runs_six_trials_and_writes_the_best_config(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="qgt-", dir="/tmp")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    try:
        out = subprocess.run(
            [sys.executable, "sweeps/tune.py", "--preset", "smoke", "--storage", str(tmp_path), "--name", "opt",
             "--num-cpus", "2", "--ray-temp-dir", temp_dir, "--set", "epochs=2", "--set", "n_samples_saved=0",
             "--out", str(tmp_path / "best.json")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = tmp_path / "opt"
    trials = sorted((run_dir / "trials").iterdir())
    assert len(trials) >= 6
    summaries = [json.loads((d / "summary.json").read_text()) for d in trials]
    assert all(s["status"] == "completed" for s in summaries)
    # Optuna proposed different hyperparameters for every trial
    configs = [json.loads((d / "config.json").read_text()) for d in trials]
    assert len({c["lr_g"] for c in configs}) == len(configs)
    assert {c["model"] for c in configs} == {"qcbm"} and len({c["n"] for c in configs}) == 1

    best = yaml.safe_load((run_dir / "best_config.yaml").read_text())
    assert set(best["config"]) == set(SEARCHED)
    assert math.isfinite(best["value"])
    # the reported best is the lowest final MMD among the trials
    finals = {c["trial_id"]: s["mmd_final"] for c, s in zip(configs, summaries)}
    assert best["value"] == pytest.approx(min(finals.values()))
    assert finals[best["trial_id"]] == pytest.approx(best["value"])
    assert json.loads((tmp_path / "best.json").read_text())["config"] == best["config"]
    assert f"--base-config {tmp_path / 'best.json'}" in out.stdout

    # the grid presets take it as --base-config
    base = P.load_base_config(run_dir / "best_config.yaml")
    grid = P.expand(P.apply_overrides(P.get_preset("paper", "ferrite"), base))
    assert {t["lr_g"] for t in grid} == {best["config"]["lr_g"]}
