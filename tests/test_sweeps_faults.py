"""Fault handling of the Ray trainable on an embedded Ray: a crashed trial resumes from its checkpoint; a bad
config is reported once and not retried."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from sweeps.presets import trial_id  # noqa: E402
from sweeps.trainable import CRASH_MARKER, make_trainable  # noqa: E402

TINY = dict(phase="ferrite", data_source="synthetic", train_size=16, eval_size=16, epochs=4, batch_size=16,
            width=2, n=2, qcbm_epochs=4, qcbm_samples=32, update_every=1, checkpoint_every=1, n_samples_saved=0,
            seed=0)


def _attempts(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "attempts.jsonl").read_text().splitlines() if line.strip()]


def _tune_epochs(tune_trial_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (tune_trial_dir / "result.json").read_text().splitlines() if line.strip()]
    return [int(r["epoch"]) for r in rows]


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    """One Tune run with a trial crashing at epoch 2 (first attempt only) and a trial with a bad config."""
    storage = tmp_path_factory.mktemp("faults")
    crash = {**TINY, "model": "qcbm", "_crash_at_epoch": 2}
    crash["_trial_id"] = trial_id({k: v for k, v in crash.items() if not k.startswith("_")}) + "-crash"
    bad = {**TINY, "model": "bernoulli", "batch_size": 64}  # batch larger than the training set: ValueError
    bad["_trial_id"] = "ferrite-bernoulli-bad-config"
    nodata = {**TINY, "model": "bernoulli", "data_source": str(storage / "missing.npz")}  # valid, but no file
    nodata["_trial_id"] = "ferrite-bernoulli-missing-data"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            make_trainable(str(storage / "run"), cpus=1),
            param_space={"trial": tune.grid_search([crash, bad, nodata])},
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: t.config["trial"]["_trial_id"]),
            run_config=tune.RunConfig(name="run", storage_path=str(storage),
                                      failure_config=tune.FailureConfig(max_failures=3), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    return storage / "run", crash["_trial_id"], bad["_trial_id"], results, nodata["_trial_id"]


def test_crashed_trial_is_retried_and_resumes_from_its_checkpoint(fault_run):
    run_dir, crash_id, _, results, _ = fault_run
    trial_dir = run_dir / "trials" / crash_id
    assert (trial_dir / CRASH_MARKER).exists(), "the injected crash did not happen"
    attempts = _attempts(trial_dir)
    assert [a["kind"] for a in attempts] == ["start", "end", "resume", "end"]
    first, second = attempts[1], attempts[3]
    assert (first["first_epoch"], first["last_epoch"]) == (1, 2) and "InjectedCrash" in first["error"]
    # no restarted epoch: the retry resumed from the epoch-2 checkpoint and ran epochs 3..4 only
    assert attempts[2]["resumed_from_epoch"] == 2
    assert (second["first_epoch"], second["last_epoch"], second["error"]) == (3, 4, None)
    # Tune's own log keeps 1..4 or only the rows after the restore (timing); either way no epoch twice
    tune_epochs = _tune_epochs(run_dir / crash_id)
    assert tune_epochs == sorted(set(tune_epochs)) and tune_epochs[-2:] == [3, 4]
    epochs = pd.read_parquet(trial_dir / "epochs.parquet")
    assert epochs["epoch"].tolist() == [1, 2, 3, 4]
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 4
    assert json.loads((trial_dir / "config.json").read_text())["trial_id"] == crash_id
    crashed = [r for r in results if r.config["trial"]["_trial_id"] == crash_id][0]
    assert crashed.error is None


def test_bad_config_is_reported_once_with_reason_and_not_retried(fault_run):
    run_dir, _, bad_id, results, _ = fault_run
    trial_dir = run_dir / "trials" / bad_id
    attempts = _attempts(trial_dir)
    assert [a["kind"] for a in attempts] == ["invalid"]
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "batch_size" in summary["failure_reason"]
    bad = [r for r in results if r.config["trial"]["_trial_id"] == bad_id][0]
    assert bad.error is None and bad.metrics["trial_status"] == "failed"
    assert "batch_size" in bad.metrics["failure_reason"]


def test_trial_that_cannot_start_for_a_user_error_is_not_retried(fault_run):
    run_dir, _, _, results, nodata_id = fault_run
    kinds = [a["kind"] for a in _attempts(run_dir / "trials" / nodata_id)]
    assert kinds == ["start", "end"]  # one attempt although max_failures=3
    summary = json.loads((run_dir / "trials" / nodata_id / "summary.json").read_text())
    assert summary["status"] == "failed" and "missing.npz" in summary["failure_reason"]
    result = [r for r in results if r.config["trial"]["_trial_id"] == nodata_id][0]
    assert result.error is None and result.metrics["trial_status"] == "failed"
