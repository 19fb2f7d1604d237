"""Pairing and Eq. 10 on a small hand-made run (trial folders written in tmp_path), against hand-computed values."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis import collect
from analysis.fakerun import BASE_CONFIG, write_trial
from analysis.improvement import improvement_table
from analysis.winrate import winrate_table


def _cfg(**kw):
    c = dict(BASE_CONFIG, epochs=3)
    c.update(kw)
    c["trial_id"] = "{phase}-{model}-n{n}-u{update_every}-s{seed}".format(**c) + kw.pop("suffix", "")
    return c


@pytest.fixture()
def hand_run(tmp_path):
    """Hand-made run.

    ferrite n=4: Bernoulli seeds 0, 1 with last-100 means 2.0 and 3.0 (MMD_B = 2.5);
      QCBM update_every=30: seeds 0, 1 -> 1.0, 1.0 (MMD_Q = 1.0, RI = 1.5, diffs [1, 2]);
      QCBM update_every=10: seeds 0, 1 -> 2.0, 4.0 (MMD_Q = 3.0, RI = -1/6), seed 2 failed;
      QCBM n=6: no Bernoulli partner.
    bainite n=4: Bernoulli seed 0 only, QCBM seed 1 only -> no common seed.
    bainite n=8: Bernoulli only -> no QCBM.
    """
    r = tmp_path / "run"
    w = lambda cfg, mmd, **kw: write_trial(r / "sub" / cfg["trial_id"], cfg, mmd, **kw)
    w(_cfg(model="bernoulli", seed=0, update_every=7, device="cuda"), [3, 2, 1], mmd_floor=0.1)
    w(_cfg(model="bernoulli", seed=1, update_every=7), [4, 3, 2], mmd_floor=0.3)
    w(_cfg(model="qcbm", seed=0, update_every=30), [1, 1, 1], mmd_floor=0.1)
    # the summary lies about the final MMD: the recomputed value (1.0) must be used
    w(_cfg(model="qcbm", seed=1, update_every=30), [0.5, 1.5, 1.0], mmd_floor=0.3,
      summary_overrides={"mmd_last100": 99.0})
    w(_cfg(model="qcbm", seed=0, update_every=10), [2, 2, 2])
    w(_cfg(model="qcbm", seed=1, update_every=10), [4, 4, 4])
    w(_cfg(model="qcbm", seed=2, update_every=10), [9, np.nan], status="failed", failure_reason="OOM")
    w(_cfg(model="qcbm", seed=0, n=6, update_every=30), [1, 1, 1])
    w(_cfg(phase="bainite", model="bernoulli", seed=0), [1, 1, 1])
    w(_cfg(phase="bainite", model="qcbm", seed=1), [1, 1, 1])
    w(_cfg(phase="bainite", model="bernoulli", seed=0, n=8), [1, 1, 1])
    # completed according to its summary, but only 2 of 3 epochs on disk: left out
    w(_cfg(phase="bainite", model="bernoulli", seed=3, n=8), [1, 1], )
    return r


def test_collect_recomputes_final_mmd_and_flags_bad_trials(hand_run):
    col = collect(hand_run, progress=False)
    t = col.trials.set_index("trial_id")
    assert len(t) == 12
    assert t.loc["ferrite-qcbm-n4-u30-s1", "mmd_last100"] == pytest.approx(1.0)
    assert t.loc["ferrite-qcbm-n4-u30-s1", "summary_mmd_last100"] == 99.0
    assert bool(t.loc["ferrite-qcbm-n4-u30-s1", "mmd_mismatch"])
    assert not t.loc["ferrite-qcbm-n4-u10-s2", "usable"]
    assert t.loc["ferrite-qcbm-n4-u10-s2", "status"] == "failed"
    assert "OOM" in t.loc["ferrite-qcbm-n4-u10-s2", "problem"]
    short = t.loc["bainite-bernoulli-n8-u30-s3"]
    assert not short["usable"] and "2 of 3 epochs" in short["problem"]
    assert int(t["usable"].sum()) == 10
    assert set(col.epochs["trial_id"]) == set(t.index)
    assert len(col.epochs) == 10 * 3 + 2 + 2          # the failed and the short trial have 2 epochs each
    # bookkeeping fields (device, trial_id) do not change the setting; update_every does
    assert t.loc["ferrite-bernoulli-n4-u7-s0", "setting_id"] == t.loc["ferrite-bernoulli-n4-u7-s1", "setting_id"]
    assert t.loc["ferrite-qcbm-n4-u30-s0", "setting_id"] != t.loc["ferrite-qcbm-n4-u10-s0", "setting_id"]
    assert t.loc["ferrite-qcbm-n4-u30-s0", "pair_key"] == t.loc["ferrite-bernoulli-n4-u7-s0", "pair_key"]


def test_eq10_per_setting_matches_hand_computed_values(hand_run):
    col = collect(hand_run, progress=False)
    imp, pairs, _ = improvement_table(col, resamples=2000)
    paired = imp[imp["pair_status"] == "paired"].set_index("update_every")
    assert len(paired) == 2                       # one Bernoulli group pairs with both QCBM settings
    u30 = paired.loc[30]
    assert (u30["mmd_b"], u30["mmd_a"], u30["ri"]) == pytest.approx((2.5, 1.0, 1.5))
    assert list(u30["seeds"]) == [0, 1]
    assert list(u30["diff_seeds"]) == pytest.approx([1.0, 2.0])
    assert u30["n_seeds"] == 2 and u30["mmd_floor"] == pytest.approx(0.2)
    # bootstrap over 2 seeds: resample means take ratios 2/1, 2.5/1, 3/1 -> RI in [1.0, 2.0]
    assert 1.0 - 1e-12 <= u30["ri_ci_low"] <= 1.5 <= u30["ri_ci_high"] <= 2.0 + 1e-12
    assert bool(u30["a_wins"])
    u10 = paired.loc[10]
    assert u10["ri"] == pytest.approx(2.5 / 3.0 - 1)
    assert list(u10["diff_seeds"]) == pytest.approx([0.0, -1.0])
    assert u10["n_excluded"] == 1                  # the failed seed 2
    assert not bool(u10["a_wins"])
    assert len(pairs) == 4
    assert set(pairs["ri"].round(6)) == {1.0, 2.0, 0.0, -0.25}


def test_unpaired_settings_get_a_status_and_reason(hand_run):
    col = collect(hand_run, progress=False)
    imp, _, _ = improvement_table(col, resamples=100)
    st = imp.set_index("label")["pair_status"].to_dict()
    status = sorted(imp["pair_status"])
    assert status == ["no_bernoulli", "no_common_seed", "no_qcbm", "paired", "paired"]
    row = imp[imp["pair_status"] == "no_bernoulli"].iloc[0]
    assert row["n"] == 6 and "n (6 vs 4)" in row["unpaired_reason"]
    row = imp[imp["pair_status"] == "no_common_seed"].iloc[0]
    assert "[1]" in row["unpaired_reason"] and "[0]" in row["unpaired_reason"]
    row = imp[imp["pair_status"] == "no_qcbm"].iloc[0]
    assert row["n"] == 8 and row["phase"] == "bainite" and pd.isna(row["update_every"])
    assert all(math.isnan(v) for v in imp[imp["pair_status"] != "paired"]["ri"])
    assert st  # labels exist


def test_winrate_counts_settings_and_seeds(hand_run):
    col = collect(hand_run, progress=False)
    imp, pairs, _ = improvement_table(col, resamples=100)
    win = winrate_table(imp, pairs)
    # u10 and u30 share one Bernoulli partner group: one stratum each, so the partner counts once per row.
    # u30: CI [1.0, 2.0] -> win; u10: CI [-0.25, 0.0] touches 0 -> tie (it used to count as a loss, RI < 0)
    pooled = win[(win["scope"] == "pooled") & (win["unit"] == "setting")].set_index("stratum")
    assert sorted(pooled.index) == ["update_every=10", "update_every=30"]
    assert tuple(pooled.loc["update_every=30", ["n", "wins", "ties", "losses"]]) == (1, 1, 0, 0)
    assert tuple(pooled.loc["update_every=10", ["n", "wins", "ties", "losses"]]) == (1, 0, 1, 0)
    assert (pooled["n_partner_groups"] == 1).all() and pooled["independent"].all()
    assert pooled.loc["update_every=30", "sign_p"] == pytest.approx(1.0)
    seed = win[(win["scope"] == "phase") & (win["unit"] == "seed") & (win["phase"] == "ferrite")].iloc[0]
    # per-seed RI: 1.0, 2.0 (u30) and 0.0 (tie), -0.25 (u10); the two Bernoulli trials count twice
    assert (seed["n"], seed["wins"], seed["losses"], seed["ties"]) == (4, 2, 1, 1)
    assert not seed["independent"] and "not independent" in seed["note"]
    per = win[win["scope"] == "setting"]
    assert len(per) == 2 and per["n"].tolist() == [2, 2]
    assert set(win["phase"]) == {"all", "ferrite"}


def test_duplicate_trial_id_keeps_one_copy_and_lists_the_other(tmp_path):
    cfg = _cfg(model="bernoulli", seed=0, update_every=30)
    write_trial(tmp_path / "a" / "x", cfg, [1, 1, 1])
    write_trial(tmp_path / "b" / "x", cfg, [5, 5], status="running")
    col = collect(tmp_path, progress=False)
    t = col.trials.set_index("trial_id")
    assert t.loc[cfg["trial_id"], "path"] == "a/x" and t.loc[cfg["trial_id"], "usable"]
    dup = t.loc[f"{cfg['trial_id']}#dup1"]
    assert dup["status"] == "duplicate" and not dup["usable"] and "a/x" in dup["problem"]
    assert any("appears in 2 folders" in w for w in col.warnings)
