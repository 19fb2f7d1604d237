"""The `python -m analysis` command end to end on hand-made runs: files, speed, failures, docs."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import run_analysis, schema
from analysis.fakerun import BASE_CONFIG, make_run, write_trial
from analysis.main import main

ROOT = Path(__file__).resolve().parents[1]
TABLES = ["trials.parquet", "epochs.parquet", "improvement.parquet", "pairs.parquet", "winrate.parquet"]


def test_cli_on_smoke_sized_run_writes_every_file_in_under_30s(tmp_path):
    run = tmp_path / "run"
    # 2 phases x 2 n x 3 seeds x 2 models = 24 trials x 10 epochs; first seed saves samples
    make_run(run, ns=(4, 6), train_sizes=(64,), seeds=(0, 1, 2), epochs=10, samples=3,
             effect={("ferrite", 4, 64): 0.8, ("ferrite", 6, 64): 0.3, ("bainite", 4, 64): -0.2,
                     ("bainite", 6, 64): 1.5})
    out = tmp_path / "out"
    # runs analysis/__main__.py exactly as `python -m analysis` does, then checks that torch/ray stayed out
    code = ("import sys, runpy\n"
            "try:\n    runpy.run_module('analysis', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'analysis imported torch/ray'\n"
            "sys.exit(rc)")
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, str(run), "--out", str(out), "--bootstrap", "2000",
                          "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(f"analysis CLI on 24 trials x 10 epochs: {elapsed:.1f} s wall, {cpu:.1f} s CPU")
    assert res.returncode == 0, res.stderr
    # the budget is 30 s; CPU time is checked strictly, wall time with slack for a shared, loaded CI machine
    assert cpu < 30, f"analysis used {cpu:.1f} s CPU"
    assert elapsed < 60, f"analysis took {elapsed:.1f} s"
    for name in TABLES + ["report.md"]:
        assert (out / name).stat().st_size > 0, name
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "ri_vs_n.png" in figs and "ri_vs_n.pdf" in figs
    assert sum(f.startswith("mmd_") and f.endswith(".png") for f in figs) == 4
    assert sum(f.startswith("mmd_") and f.endswith(".pdf") for f in figs) == 4
    assert sum(f.startswith("samples_") and f.endswith(".png") for f in figs) == 4
    for f in figs:
        head = (out / "figures" / f).read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if f.endswith(".png") else b"%PDF"), f
    assert not [p for p in out.rglob(".*tmp*")], "temporary files left behind"
    for name in TABLES:
        schema.check_columns(pd.read_parquet(out / name), name)
    assert str(pq.read_schema(out / "improvement.parquet").field("seeds").type) == "list<element: int64>"
    imp = pd.read_parquet(out / "improvement.parquet").set_index(["phase", "n"])
    assert imp.loc[("bainite", 6), "ri"] == pytest.approx(1.5, rel=0.05)
    assert imp.loc[("bainite", 4), "ri"] == pytest.approx(-0.2, rel=0.1)
    win = pd.read_parquet(out / "winrate.parquet")
    pooled = win[(win["scope"] == "pooled") & (win["unit"] == "setting")].iloc[0]
    assert (pooled["n"], pooled["wins"]) == (4, 3)
    report = (out / "report.md").read_text()
    assert "3 of 4" in report and "22 % to 99 %" in report and "far too small" in report
    assert "figures/ri_vs_n.png" in report


def test_failed_trial_and_unpaired_setting_are_reported_not_crashed(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=5, samples=2)
    cfg = dict(BASE_CONFIG, model="qcbm", seed=2, n=4, epochs=5, trial_id="broken")
    write_trial(run / "broken", cfg, [1.0, 0.9], status="failed", failure_reason="worker died")
    cfg = dict(BASE_CONFIG, model="qcbm", seed=0, n=5, epochs=5, trial_id="lonely")
    write_trial(run / "lonely", cfg, [1.0] * 5, samples=2)
    cfg = dict(BASE_CONFIG, model="qcbm", seed=1, n=4, epochs=5, trial_id="running")
    write_trial(run / "running", cfg, [1.0] * 3, status="running")
    (run / "garbage").mkdir()
    (run / "garbage" / "config.json").write_text("{not json")
    (run / "garbage" / "summary.json").write_text("{}")
    cfg = dict(BASE_CONFIG, model="bernoulli", seed=5, n=4, epochs=5, trial_id="corrupt")
    write_trial(run / "corrupt", cfg, [1.0] * 5)
    (run / "corrupt" / "epochs.parquet").write_bytes(b"PAR1 broken")
    res = run_analysis(run, tmp_path / "out", resamples=500, progress=False, montage_samples=2)
    out = res["out"]
    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    assert trials.loc["broken", "status"] == "failed" and not trials.loc["broken", "usable"]
    assert trials.loc["running", "status"] == "running" and not trials.loc["running", "usable"]
    assert "unreadable" in trials.loc["garbage", "problem"]
    assert "epochs.parquet unreadable" in trials.loc["corrupt", "problem"]
    assert int(trials["usable"].sum()) == 5
    imp = pd.read_parquet(out / "improvement.parquet")
    assert sorted(imp["pair_status"]) == ["no_bernoulli", "paired"]
    paired = imp[imp["pair_status"] == "paired"].iloc[0]
    assert paired["n_seeds"] == 2 and paired["n_excluded"] == 3   # broken, running, corrupt
    report = (out / "report.md").read_text()
    for word in ("worker died", "no_bernoulli", "broken", "running", "garbage"):
        assert word in report, word
    assert (out / "figures" / f"mmd_ferrite_n5_t64_u{BASE_CONFIG['update_every']}_qcbm.png").exists()  # lonely


def test_run_without_completed_trial_fails_with_clear_message(tmp_path, capsys):
    run = tmp_path / "run"
    for s in range(2):
        cfg = dict(BASE_CONFIG, seed=s, trial_id=f"t{s}")
        write_trial(run / f"t{s}", cfg, [1.0], status="failed", failure_reason="boom")
    assert main([str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no completed trial" in err and "2 failed" in err and err.count("\n") == 1
    assert not (run / "analysis" / "trials.parquet").exists()
    assert main([str(tmp_path / "nope"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--quiet"]) == 2
    assert "no trial folder" in capsys.readouterr().err


def test_docs_describe_every_output_column():
    text = (ROOT / "docs" / "analysis.md").read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    for table, cols in schema.TABLES.items():
        sec = [s for s in sections if s.startswith(f"`{table}`")]
        assert sec, f"docs/analysis.md lacks a '### `{table}`' section"
        for name, _, _ in cols:
            if name != schema.CONFIG_PLACEHOLDER:
                assert f"`{name}`" in sec[0], f"{table}: column {name} undocumented"


def test_register_adds_an_analyze_subcommand_for_the_qgan_dispatcher(tmp_path):
    import argparse

    from analysis.main import handler, register

    parser = argparse.ArgumentParser(prog="qgan")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--bootstrap", "50"])
    assert args.func is handler and args.bootstrap == 50 and args.out == str(tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="no trial folder"):
        args.func(args)
