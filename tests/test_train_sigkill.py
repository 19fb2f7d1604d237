"""`qgan train` killed with SIGKILL mid-run and resumed with --resume ends with the uninterrupted run's records."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from conftest import write_random_dataset
from qgan.train import TrialConfig, run_trial

EPOCHS = 12


def _settings(data_path: str) -> dict:
    return dict(n=4, train_size=32, eval_size=8, batch_size=8, width=4, epochs=EPOCHS, update_every=2,
                qcbm_epochs=4, qcbm_samples=64, qcbm_optimizer="fd", data_source=data_path, checkpoint_every=1,
                n_samples_saved=0)


def _rows(path: str) -> int:
    try:
        return len(pd.read_parquet(path))
    except Exception:  # not written yet, or being replaced
        return 0


def test_sigkilled_qgan_train_resumes_to_the_uninterrupted_records(tmp_path):
    data_path = write_random_dataset(tmp_path / "random.npz", 48, seed=3)
    settings = _settings(data_path)
    out = tmp_path / "trial"
    cmd = [sys.executable, "-m", "qgan.cli", "train", "--out", str(out), "--quiet"]
    cmd += [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]
    env = {**os.environ, "QGAN_CACHE_DIR": str(tmp_path / "cache")}

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _rows(str(out / "epochs.parquet")) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    assert proc.poll() is None, "the trial finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = _rows(str(out / "epochs.parquet"))
    assert 3 <= done_at_kill < EPOCHS

    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    full = run_trial(TrialConfig.from_dict(settings))
    on_disk = pd.read_parquet(out / "epochs.parquet").drop(columns=["seconds"])
    expected = pd.DataFrame(full.records).drop(columns=["seconds"])
    pd.testing.assert_frame_equal(on_disk, expected)
