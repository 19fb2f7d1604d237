"""sweeps/qpu_campaign.py without Ray: the paper plan (dry run) and the budget-exhausted trial status."""
from __future__ import annotations

import json

import pytest

from sweeps import qpu_campaign


def test_dry_run_prints_the_paper_plan_and_runs_nothing(tmp_path, capsys):
    rc = qpu_campaign.main(["--dry-run", "--storage", str(tmp_path), "--price-1q", "0.001", "--price-2q", "0.01",
                            "--price-per-job", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and list(tmp_path.iterdir()) == []
    assert "2 QCBM trial(s) on the QPU, 40 Bernoulli baseline run(s)" in out
    assert "5 SPSA cycle(s) x (2 x 50 + 1) + 1 initial pool = 506 circuits x 1000 shots" in out
    assert "6 SPSA cycle(s) x (2 x 50 + 1) + 1 initial pool = 607 circuits x 1000 shots" in out
    assert "66 2q (MS)" in out and "30 2q (MS)" in out


def test_plan_time_and_cost_follow_gate_times_and_prices():
    trials = qpu_campaign.campaign_trials("paper", ["bainite"], "ionq")
    q = [t for t in trials if t["model"] == "qcbm"]
    assert len(q) == 1 and len(trials) == 21
    assert q[0]["qcbm_epochs"] == 300 and q[0]["connectivity"] == "reduced" and q[0]["n"] == 12
    p = qpu_campaign.circuit_plan(q[0], price_1q=0.001, price_2q=0.01, price_job=1.0)
    assert p["gates_2q"] == 30 and p["circuits"] == 607 and p["total_shots"] == 607_000
    per_circuit = 1000 * (p["gates_1q"] * 135e-6 + p["gates_2q"] * 600e-6)
    assert p["qpu_seconds"] == pytest.approx(607 * per_circuit)
    assert p["cost"] == pytest.approx(607 * (1000 * (p["gates_1q"] * 0.001 + 30 * 0.01) + 1.0))


def test_budget_refusal_ends_the_campaign_trial_as_budget_exhausted(tmp_path, monkeypatch):
    import sweeps.trainable as trainable
    from ray import tune

    from sweeps.gateway import BudgetExceeded

    trial = qpu_campaign.campaign_trials("smoke", ["ferrite"], "emulator")[0]
    tid = trial["_trial_id"]

    def fake_train_trial(config, *, run_dir, threads=None, backend=None):
        d = tmp_path / "trials" / tid
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"status": "failed", "failure_reason": "x",
                                                    "epochs_completed": 2}))
        raise BudgetExceeded("shot budget exhausted: request needs 128 shots, 900 of 1000 already committed")

    reports = []
    monkeypatch.setattr(trainable, "train_trial", fake_train_trial)
    monkeypatch.setattr(tune, "report", lambda metrics, **kw: reports.append(metrics))
    qpu_campaign.campaign_trial({"trial": trial}, run_dir=str(tmp_path))  # does not raise: Tune must not retry
    summary = json.loads((tmp_path / "trials" / tid / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failure_reason"].startswith("budget_exhausted: shot budget")
    assert summary["epochs_completed"] == 2
    assert reports and reports[0]["trial_status"] == "failed"


def test_bad_rate_flag_is_a_one_line_error(tmp_path, capsys):
    rc = qpu_campaign.main(["--preset", "smoke", "--max-in-flight", "0", "--storage", str(tmp_path)])
    assert rc == 2 and "--max-in-flight must be > 0" in capsys.readouterr().err
