"""sweeps/qpu_campaign.py without Ray: the plan (dry run), trials from the sweep presets (pairing), the run's record
restored by --resume (refusing flags that differ), and the budget-exhausted trial status."""
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
    # an SPSA iteration's 2 circuits are one job; the pool and each final evaluation one job each
    assert "256 job(s) (<= 50 circuits each)" in out and "307 job(s)" in out
    assert "USD" in out and "built-in price table" in out


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


def _effective(t):
    from qgan.config import TrialConfig

    return TrialConfig.from_dict({k: v for k, v in t.items() if not k.startswith("_")}).to_dict()


def test_trials_come_from_the_sweep_presets_so_set_reaches_every_arm_it_applies_to():
    from qgan import results
    from sweeps.presets import parse_set

    trials = qpu_campaign.campaign_trials("smoke", ["ferrite"], "emulator", 3,
                                          parse_set(["width=32", "gp_lambda=5", "spsa_a=0.3"]))
    qcbm = [t for t in trials if t["model"] == "qcbm"]
    bern = [t for t in trials if t["model"] == "bernoulli"]
    assert len(qcbm) == 1 and [t["seed"] for t in bern] == [0, 1, 2]
    assert all(t["width"] == 32 and t["gp_lambda"] == 5 for t in trials)
    assert qcbm[0]["spsa_a"] == 0.3 and all("spsa_a" not in t and "backend" not in t for t in bern)
    key = results.pair_fields(_effective(qcbm[0]))
    assert all(results.pair_fields(_effective(b)) == key for b in bern)  # paired with every baseline
    with pytest.raises(ValueError, match="--set seed"):
        qpu_campaign.campaign_trials("smoke", ["ferrite"], "emulator", 1, {"seed": 3})


def test_plan_counts_jobs_of_an_fd_step_one_per_circuit_or_multi_circuit():
    from sweeps.gateway import GatewayConfig

    trial = qpu_campaign.campaign_trials("paper", ["ferrite"], "ionq", 0, {"qcbm_optimizer": "fd"})[0]
    cycles = trial["qcbm_epochs"] // trial["update_every"]
    one = qpu_campaign.circuit_plan(trial, gateway=GatewayConfig("p", "/x", max_circuits_per_job=1))
    multi = qpu_campaign.circuit_plan(trial, gateway=GatewayConfig("p", "/x", max_circuits_per_job=50))
    assert one["params"] == 114 and one["circuits"] == 1 + cycles * (228 + 1)
    assert one["jobs"] == one["circuits"] and multi["circuits"] == one["circuits"]
    assert multi["jobs"] == 1 + cycles * (5 + 1)  # 228 circuits = 4 x 50 + 28
    priced = GatewayConfig("p", "/x", max_circuits_per_job=50, job_minimum=100.0)
    p = qpu_campaign.circuit_plan(trial, gateway=priced)
    assert p["cost"] >= p["jobs"] * 100.0  # the per-job minimum counts once per job


def _saved_run(tmp_path, *flags):
    """A smoke run's record, as the campaign writes it before launching anything."""
    parser = qpu_campaign.build_parser()
    argv = ["--preset", "smoke", "--phase", "ferrite", "--storage", str(tmp_path), "--name", "r", *flags]
    args = parser.parse_args(argv)
    qpu_campaign.resolve_defaults(args)
    from sweeps.presets import parse_set

    trials = qpu_campaign.campaign_trials(args.preset, ["ferrite"], args.backend, args.bernoulli_runs,
                                          parse_set(args.overrides), args.seed)
    record = qpu_campaign.make_record(args, argv, ["ferrite"], trials, [])
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "qpu_campaign.json").write_text(json.dumps(record))
    return record


def _restored(tmp_path, *flags):
    parser = qpu_campaign.build_parser()
    argv = ["--storage", str(tmp_path), "--name", "r", "--resume", *flags]
    args = parser.parse_args(argv)
    record = json.loads((tmp_path / "r" / "qpu_campaign.json").read_text())
    notes = qpu_campaign.restore(args, qpu_campaign.given_flags(parser, argv), record, "r/qpu_campaign.json")
    return args, record, notes


def test_resume_without_flags_restores_the_plan_and_every_gateway_setting(tmp_path):
    saved = _saved_run(tmp_path, "--budget-shots", "1000", "--max-jobs-per-minute", "7", "--max-in-flight", "2",
                       "--debias", "off", "--price-2q", "0.5", "--set", "width=8", "--max-circuits-per-job", "3")
    args, _, notes = _restored(tmp_path)
    assert args.budget_shots == 1000 and args.max_jobs_per_minute == 7 and args.max_in_flight == 2
    assert args.price_2q == 0.5 and args.max_circuits_per_job == 3 and args.debias == "off"
    assert args.preset == "smoke" and args.phase == "ferrite" and args.overrides == {"width": 8} and notes == []
    gcfg = qpu_campaign.gateway_config(args, "r", str(tmp_path / "qpu"), None)
    assert gcfg.budget_shots == 1000 and gcfg.max_jobs_per_period == 7 and gcfg.max_circuits_per_job == 3
    assert saved["gateway"]["budget_shots"] == 1000


def test_resume_refuses_a_flag_that_differs_naming_it_and_raises_a_budget_only_explicitly(tmp_path):
    _saved_run(tmp_path, "--budget-shots", "1000", "--set", "width=8")
    with pytest.raises(ValueError, match=r"--budget-shots 2000 differs from the run's saved 1000.*--raise-budget"):
        _restored(tmp_path, "--budget-shots", "2000")
    with pytest.raises(ValueError, match=r"--set width=16 differs from the run's saved width=8"):
        _restored(tmp_path, "--set", "width=16")
    with pytest.raises(ValueError, match="--max-in-flight 9 differs"):
        _restored(tmp_path, "--max-in-flight", "9")
    with pytest.raises(ValueError, match="below the run's saved 1000"):
        _restored(tmp_path, "--budget-shots", "500", "--raise-budget")
    args, record, notes = _restored(tmp_path, "--budget-shots", "1000", "--set", "width=8")  # same: fine
    assert args.budget_shots == 1000 and notes == []
    args, record, notes = _restored(tmp_path, "--budget-shots", "1500", "--raise-budget")
    assert args.budget_shots == 1500 and record["gateway"]["budget_shots"] == 1500
    assert record["budget_changes"][0]["from"] == 1000 and "raised from 1000 to 1500" in notes[0]


def test_resume_dry_run_shows_the_saved_campaign_not_the_default(tmp_path, capsys):
    _saved_run(tmp_path, "--budget-shots", "100")
    rc = qpu_campaign.main(["--storage", str(tmp_path), "--name", "r", "--resume", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "QPU campaign (smoke): 1 QCBM trial(s)" in out and "n=6" in out
    assert "WARNING: --budget-shots 100 is below the plan's 960 shots" in out
    rc = qpu_campaign.main(["--storage", str(tmp_path), "--name", "r", "--resume", "--dry-run", "--preset", "paper"])
    assert rc == 2 and "--preset paper differs from the run's saved smoke" in capsys.readouterr().err


def test_debias_needs_500_shots_and_every_option_has_help(capsys):
    rc = qpu_campaign.main(["--preset", "smoke", "--debias", "on", "--dry-run"])
    assert rc == 2 and "--debias on needs qcbm_samples >= 500" in capsys.readouterr().err
    rc = qpu_campaign.main(["--preset", "smoke", "--debias", "on", "--set", "qcbm_samples=500", "--dry-run"])
    assert rc == 0 and "debias on" in capsys.readouterr().out
    parser = qpu_campaign.build_parser()
    assert all(a.help for a in parser._actions), [a.dest for a in parser._actions if not a.help]
    text = parser.format_help()
    assert "(default: paper)" in text and "(default: 50)" in text and "none for the emulator" in text
