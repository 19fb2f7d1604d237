"""`ray job submit` of sweeps/ferrite.py against a real local multi-node cluster (cluster/local.sh)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OVERRIDES = ["n=2", "seed=0", "train_size=16", "update_every=1", "width=2", "n_samples_saved=0"]


def _ray_procs():
    spec = importlib.util.spec_from_file_location("ray_procs", ROOT / "cluster" / "ray_procs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ports_free(base: int) -> bool:
    """Are the ports cluster/local.sh would use (base .. base+299, 1 worker node) all free?"""
    wanted = list(range(base, base + 3)) + [base + 10 + 10 * i + k for i in range(2) for k in range(6)] \
        + list(range(base + 100, base + 300))
    for port in wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_base() -> int:
    for base in range(31000, 60000, 700):
        if _ports_free(base):
            return base
    pytest.skip("no free block of ports for a local Ray cluster")


@pytest.fixture
def local_cluster():
    """Head + 1 worker node on 127.0.0.1, own ports and temp dir; always stopped (only its own processes)."""
    procs = _ray_procs()
    temp_dir = tempfile.mkdtemp(prefix="qgc-", dir="/tmp")
    base = _free_base()
    env = {**os.environ, "QGAN_RAY_TEMP_DIR": temp_dir, "QGAN_RAY_BASE_PORT": str(base), "QGAN_RAY_WORKERS": "1",
           "QGAN_RAY_CPUS": "1", "RAY": str(BIN / "ray"), "PYTHON": sys.executable, "RAY_AUTH_MODE": "token",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    try:
        up = subprocess.run(["bash", "cluster/local.sh", "start"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=180)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield {"address": f"http://127.0.0.1:{base + 1}", "env": env, "temp_dir": temp_dir}
    finally:
        subprocess.run(["bash", "cluster/local.sh", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=60)
        procs.stop(temp_dir, grace=1)  # in case the script could not run
        assert not procs.find(temp_dir), "cluster processes survived the stop"
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_runs_the_smoke_sweep_on_a_local_cluster_and_a_direct_run_attaches_to_it(local_cluster,
                                                                                                 tmp_path):
    env, address = local_cluster["env"], local_cluster["address"]
    storage = tmp_path / "runs"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--submission-id", "qgan-smoke",
           "--no-wait", "--working-dir", ".", "--", "python", "sweeps/ferrite.py", "--preset", "smoke",
           "--storage", str(storage), "--name", "job"]
    for o in OVERRIDES:
        cmd += ["--set", o]
    sub = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert sub.returncode == 0, sub.stdout[-3000:] + sub.stderr[-3000:]

    def ray_job(*args: str) -> str:
        out = subprocess.run([str(BIN / "ray"), "job", *args, "--address", address, "qgan-smoke"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
        return out.stdout + out.stderr

    deadline = time.time() + 240
    status = ""
    while time.time() < deadline:
        text = ray_job("status")
        m = re.search(r"Job 'qgan-smoke' (succeeded|failed|stopped)", text)
        status = m.group(1).upper() if m else ""
        if status:
            break
        time.sleep(2)
    logs = ray_job("logs")
    assert status == "SUCCEEDED", f"job {status or 'timed out'}:\n{logs[-4000:]}"
    run_dir = storage / "job"
    assert f"next: python -m analysis {run_dir}" in logs

    from sweeps import presets as P

    preset = P.apply_overrides(P.get_preset("smoke", "ferrite"), P.parse_set(OVERRIDES))
    expected = {t["_trial_id"] for t in P.expand(preset)}
    assert {t.split("-")[1] for t in expected} == {"qcbm", "bernoulli"}
    assert {d.name for d in (run_dir / "trials").iterdir()} == expected
    for tid in expected:
        d = run_dir / "trials" / tid
        assert json.loads((d / "summary.json").read_text())["status"] == "completed"
        assert json.loads((d / "config.json").read_text())["trial_id"] == tid
        assert pd.read_parquet(d / "epochs.parquet")["epoch"].tolist() == [1, 2, 3, 4]

    # run directly on the head machine, the script attaches to the running cluster as ray.init() does
    # (its address file in the cluster's temp dir), and --local forces an embedded Ray instead
    direct = [sys.executable, "sweeps/ferrite.py", "--storage", str(storage), "--ray-temp-dir",
              local_cluster["temp_dir"], "--set", "models=bernoulli", "--set", "epochs=1"]
    for o in OVERRIDES:
        direct += ["--set", o]
    attached = subprocess.run(direct + ["--name", "direct"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=240)
    assert attached.returncode == 0, attached.stdout[-3000:] + attached.stderr[-3000:]
    assert re.search(r"^ray: attached to the cluster at \S+:\d+$", attached.stdout, re.M), attached.stdout
    [trial] = (storage / "direct" / "trials").iterdir()
    assert json.loads((trial / "summary.json").read_text())["status"] == "completed"
    embedded_dir = tempfile.mkdtemp(prefix="qge-", dir="/tmp")
    try:
        forced = subprocess.run(direct[:5] + [embedded_dir] + direct[6:] + ["--name", "forced", "--local",
                                                                             "--num-cpus", "1"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    finally:
        shutil.rmtree(embedded_dir, ignore_errors=True)
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert "ray: embedded, 1 CPUs" in forced.stdout and "attached" not in forced.stdout
