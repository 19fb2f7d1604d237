"""Win rates count independent comparisons only: win / tie / loss from the RI CI, and a partner group shared
by several settings counts once per stratum in the pooled rows."""
import numpy as np
import pandas as pd
import pytest

from analysis import collect, run_analysis
from analysis.fakerun import BASE_CONFIG, make_run, write_trial
from analysis.improvement import improvement_table
from analysis.winrate import winrate_table


def test_two_qcbm_settings_sharing_one_bernoulli_partner_count_it_once_per_stratum(tmp_path):
    # per phase one Bernoulli group and two QCBM settings (update_every 2 and 5) that both pair with it
    make_run(tmp_path, phases=("ferrite", "bainite"), ns=(4,), train_sizes=(64,), seeds=(0, 1, 2, 3), epochs=10,
             variants=[{"update_every": 2}, {"update_every": 5}], noise=0.01)
    imp, pairs, _ = improvement_table(collect(tmp_path, progress=False), resamples=500)
    assert len(imp) == 4 and (imp["outcome"] == "win").all()
    assert imp.groupby("pair_key").size().tolist() == [2, 2]          # two settings per partner group
    assert sorted(set(imp["stratum"])) == ["update_every=2", "update_every=5"]
    win = winrate_table(imp, pairs)
    pooled = win[(win["scope"] == "pooled") & (win["unit"] == "setting")].set_index("stratum")
    assert sorted(pooled.index) == ["update_every=2", "update_every=5"]
    for st in pooled.index:
        r = pooled.loc[st]
        # 2 settings, 2 distinct partner groups: not the 4 of 4 (sign p = 0.125) of counting every setting
        assert (r["n"], r["wins"], r["ties"], r["losses"], r["n_partner_groups"]) == (2, 2, 0, 0, 2)
        assert r["sign_p"] == pytest.approx(0.5) and bool(r["independent"])
    phase = win[(win["scope"] == "phase") & (win["unit"] == "setting")]
    assert len(phase) == 4 and (phase["n"] == 1).all()                 # 2 phases x 2 strata
    assert not (win["n"][win["unit"] == "setting"] > win["n_partner_groups"][win["unit"] == "setting"]).any()
    seeds = win[(win["scope"] == "pooled") & (win["unit"] == "seed")].iloc[0]
    assert seeds["n"] == 16 and not seeds["independent"] and "not independent" in seeds["note"]


def test_report_names_the_strata_and_never_pools_shared_partners(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4, 6), train_sizes=(64,), seeds=(0, 1, 2), epochs=6,
             variants=[{"update_every": 2}, {"update_every": 3}], noise=0.01)
    res = run_analysis(run, tmp_path / "out", resamples=300, progress=False, figures=False)
    report = (res["out"] / "report.md").read_text()
    assert "in stratum update_every=2, the QCBM wins 2 of 2 settings" in report
    assert "in stratum update_every=3, the QCBM wins 2 of 2 settings" in report
    assert "wins 4 of 4" not in report and "better in 4 of 4" not in report


def _hand_setting(root, seeds_a, seeds_b, n=4):
    for s, (a, b) in enumerate(zip(seeds_a, seeds_b)):
        for model, v in (("qcbm", a), ("bernoulli", b)):
            tid = f"{model}-n{n}-s{s}"
            write_trial(root / tid, dict(BASE_CONFIG, model=model, seed=s, n=n, epochs=2, trial_id=tid), [v, v])


def test_ci_spanning_zero_is_a_tie_and_the_report_says_so(tmp_path):
    run = tmp_path / "run"
    # per-seed ratios b/a scatter around 1: RI CI contains 0
    _hand_setting(run, [0.8, 1.25, 0.9, 1.1, 0.95, 1.05], [1.0] * 6)
    res = run_analysis(run, tmp_path / "out", resamples=2000, progress=False, figures=False)
    imp = pd.read_parquet(res["out"] / "improvement.parquet")
    r = imp.iloc[0]
    assert r["ri_ci_low"] < 0 < r["ri_ci_high"] and r["outcome"] == "tie"
    assert not r["underpowered"]                                       # 6 seeds
    win = pd.read_parquet(res["out"] / "winrate.parquet")
    pooled = win[(win["scope"] == "pooled") & (win["unit"] == "setting")].iloc[0]
    assert (pooled["wins"], pooled["ties"], pooled["losses"]) == (0, 1, 0)
    assert np.isnan(pooled["sign_p"])                                 # no win or loss to test
    assert pooled["win_rate"] == 0 and pooled["wilson_high"] > 0.5     # 0 of 1, Wilson on wins/(w+t+l)
    report = (res["out"] / "report.md").read_text()
    assert "Every RI confidence interval of QCBM vs Bernoulli spans 0" in report


def test_setting_without_a_ci_is_a_tie(tmp_path):
    _hand_setting(tmp_path, [0.5], [1.0])                              # one seed: no CI although RI = +100 %
    imp, pairs, _ = improvement_table(collect(tmp_path, progress=False), resamples=200)
    r = imp.iloc[0]
    assert r["ri"] == pytest.approx(1.0) and np.isnan(r["ri_ci_low"]) and r["outcome"] == "tie"
    assert bool(r["a_wins"]) and bool(r["underpowered"])
    win = winrate_table(imp, pairs)
    pooled = win[(win["scope"] == "pooled") & (win["unit"] == "setting")].iloc[0]
    assert (pooled["wins"], pooled["ties"], pooled["losses"]) == (0, 1, 0)
