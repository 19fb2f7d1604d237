"""Three arms, three comparisons: known RI signs on a hand-made run, the pairing key of each comparison,
the per-setting tests, and an old two-arm run that still analyses exactly as before."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import collect, run_analysis, schema
from analysis.fakerun import BASE_CONFIG, make_run, write_trial
from analysis.improvement import improvement_table

EFFECT = {("ferrite", 4, 64): 0.5, ("ferrite", 6, 64): -0.3}     # qcbm vs bernoulli
PRODUCT = {("ferrite", 4, 64): 0.2, ("ferrite", 6, 64): 0.4}     # product vs bernoulli


@pytest.fixture(scope="module")
def three_arm(tmp_path_factory):
    root = tmp_path_factory.mktemp("three") / "run"
    make_run(root, phases=("ferrite",), ns=(4, 6), train_sizes=(64,), seeds=(0, 1, 2, 3, 4), epochs=10,
             models=("bernoulli", "product", "qcbm"), effect=EFFECT, product_effect=PRODUCT, noise=0.01)
    return root


def test_three_arm_run_gives_three_comparisons_with_known_ri_signs(three_arm):
    imp, pairs, _ = improvement_table(collect(three_arm, progress=False), resamples=1000)
    assert list(dict.fromkeys(imp["comparison"])) == [c[0] for c in schema.COMPARISONS]
    assert (imp["pair_status"] == "paired").all() and len(imp) == 6
    ri = imp.set_index(["comparison", "n"])["ri"]
    for n in (4, 6):
        e, p = EFFECT[("ferrite", n, 64)], PRODUCT[("ferrite", n, 64)]
        assert ri[("qcbm_vs_bernoulli", n)] == pytest.approx(e, abs=0.02)
        assert ri[("product_vs_bernoulli", n)] == pytest.approx(p, abs=0.02)
        assert ri[("qcbm_vs_product", n)] == pytest.approx((1 + e) / (1 + p) - 1, abs=0.02)
    # n=4: qcbm beats both, product beats bernoulli; n=6: qcbm loses to both
    out = imp.set_index(["comparison", "n"])["outcome"]
    assert out[("qcbm_vs_bernoulli", 4)] == "win" and out[("qcbm_vs_product", 4)] == "win"
    assert out[("qcbm_vs_bernoulli", 6)] == "loss" and out[("qcbm_vs_product", 6)] == "loss"
    assert out[("product_vs_bernoulli", 4)] == "win" and out[("product_vs_bernoulli", 6)] == "win"
    row = imp[(imp["comparison"] == "qcbm_vs_product") & (imp["n"] == 4)].iloc[0]
    assert (row["arm_a"], row["arm_b"]) == ("qcbm", "product")
    assert row["mmd_b"] > row["mmd_a"] and row["ri"] == pytest.approx(row["mmd_b"] / row["mmd_a"] - 1)
    assert set(pairs["comparison"]) == {c[0] for c in schema.COMPARISONS} and len(pairs) == 6 * 5
    assert all(t.startswith("ferrite-product") for t in pairs[pairs["comparison"] == "qcbm_vs_product"]["trial_id_b"])


def test_paired_t_p_and_underpowered_flag_per_setting(three_arm):
    imp, pairs, _ = improvement_table(collect(three_arm, progress=False), resamples=500)
    for _, r in imp.iterrows():
        sel = pairs[(pairs["comparison"] == r["comparison"]) & (pairs["setting_id"] == r["setting_id"])]
        d = np.log(sel["mmd_b"].to_numpy()) - np.log(sel["mmd_a"].to_numpy())
        assert sel["log_ratio"].to_numpy() == pytest.approx(d)
        ref = sps.ttest_1samp(d, 0.0)
        assert r["t_p"] == pytest.approx(ref.pvalue, rel=1e-10) and r["t_stat"] == pytest.approx(ref.statistic)
        assert r["log_ratio_mean"] == pytest.approx(d.mean())
        assert r["log_ratio_ci_low"] < r["log_ratio_mean"] < r["log_ratio_ci_high"]
        assert r["n_seeds"] == 5 and bool(r["underpowered"]) and "underpowered" in r["test_note"]
        assert r["ri_ci_method"] == "BCa"
        assert r["wilcoxon_p"] == pytest.approx(0.0625)          # 5 seeds, all one sign: the smallest p
        assert r["sign_a_better"] + r["sign_b_better"] == 5


def test_six_seeds_are_not_underpowered(tmp_path):
    make_run(tmp_path, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=tuple(range(6)), epochs=5)
    imp, _, _ = improvement_table(collect(tmp_path, progress=False), resamples=200)
    assert imp["n_seeds"].tolist() == [6] and not imp["underpowered"].any()


def test_pairing_key_drops_the_fields_either_arm_ignores(tmp_path):
    """qcbm_vs_product ignores only circuit fields: a product trial with other circuit values pairs, one with
    another learning rate does not; bernoulli pairs with both (it ignores prior fields too)."""
    base = dict(BASE_CONFIG, epochs=2, qcbm_lr=0.1)
    trials = {"q": dict(model="qcbm", layers=2, backend="aer"),
              "p": dict(model="product", layers=1, backend="exact", theta_init_scale=0.01),
              "p_lr": dict(model="product", qcbm_lr=0.5),
              "b": dict(model="bernoulli", qcbm_lr=0.9, update_every=3)}
    for tid, kw in trials.items():
        write_trial(tmp_path / tid, dict(base, trial_id=tid, **kw), [0.2, 0.2])
    imp, pairs, _ = improvement_table(collect(tmp_path, progress=False), resamples=100)
    qp = imp[imp["comparison"] == "qcbm_vs_product"].set_index("pair_status")
    assert sorted(qp.index) == ["no_qcbm", "paired"]
    assert list(qp.loc["paired", "trial_ids_b"]) == ["p"]
    assert "qcbm_lr (0.5 vs 0.1)" in qp.loc["no_qcbm", "unpaired_reason"]
    pb = imp[(imp["comparison"] == "product_vs_bernoulli")]
    assert (pb["pair_status"] == "paired").all() and len(pb) == 2       # both product settings pair with b
    qb = imp[imp["comparison"] == "qcbm_vs_bernoulli"]
    assert qb["pair_status"].tolist() == ["paired"]
    # the two product settings share the one Bernoulli partner: separate strata, named by the field the
    # product reads (qcbm_lr), not by the circuit field it ignores (theta_init_scale)
    assert sorted(pb["stratum"]) == ["qcbm_lr=0.1", "qcbm_lr=0.5"]


def test_old_two_arm_run_still_analyses_with_only_the_papers_comparison(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4, 6), train_sizes=(64,), seeds=(0, 1, 2), epochs=8,
             effect={("ferrite", 4, 64): 0.8, ("ferrite", 6, 64): 0.3}, samples=2)
    res = run_analysis(run, tmp_path / "out", resamples=500, progress=False, montage_samples=2)
    out = res["out"]
    imp = pd.read_parquet(out / "improvement.parquet")
    assert set(imp["comparison"]) == {"qcbm_vs_bernoulli"} and (imp["pair_status"] == "paired").all()
    assert imp.set_index("n")["ri"].to_dict() == pytest.approx({4: 0.8, 6: 0.3}, abs=0.02)
    trials = pd.read_parquet(out / "trials.parquet")
    assert not trials["latent_pool_used"].any() and trials["diversity_final"].isna().all()
    epochs = pd.read_parquet(out / "epochs.parquet")
    assert epochs["prior_tv"].isna().all() and not epochs["prior_exact"].any()
    win = pd.read_parquet(out / "winrate.parquet")
    assert set(win["comparison"]) == {"qcbm_vs_bernoulli"}
    report = (out / "report.md").read_text()
    assert "No trial recorded diversity" in report and "No trial used a latent pool" in report
    assert "No trained-prior trial recorded prior diagnostics" in report
    assert "qcbm_vs_product" not in report
    assert not list((out / "figures").glob("prior_*"))
    assert len(list((out / "figures").glob("mmd_*.png"))) == 2


def test_three_arm_report_figures_diversity_pools_and_prior_table(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1, 2), epochs=10,
             models=("bernoulli", "product", "qcbm"), update_every={"ferrite": 2}, diagnostics=True,
             diversity=True, latent_pool=0)
    cfg = dict(BASE_CONFIG, model="qcbm", seed=0, epochs=10, backend="ionq", latent_pool=0, trial_id="qpu-s0")
    write_trial(run / "qpu-s0", cfg, [0.3] * 10)
    res = run_analysis(run, tmp_path / "out", resamples=300, progress=False, montage_samples=0)
    out = res["out"]
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {"prior_ferrite.png", "prior_ferrite.pdf", "ri_vs_n.png"} <= figs
    # one MMD figure per arm-A setting: the QCBM setting, the product setting, the pool QCBM setting
    assert len([f for f in figs if f.startswith("mmd_") and f.endswith(".png")]) == 3
    report = (out / "report.md").read_text()
    for title in ("QCBM vs Bernoulli", "QCBM vs product", "product vs Bernoulli", "## Real-vs-real floor",
                  "## Diversity", "## Latent pools", "## Prior diagnostics", "### Win / tie / loss"):
        assert title in report, title
    assert "0.01 ± 0 (n = 10)" in report                        # the floor, mean ± sd over the 10 usable trials
    assert "1 of 10 trials reused a latent pool" in report and "qpu-s0" in report
    assert "| ferrite | QCBM | 0.45 ± 0 (n = 3) | 0.5 ± 0 (n = 3) | 0.9 |" in report
    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    assert bool(trials.loc["qpu-s0", "latent_pool_used"]) and not trials["latent_pool_used"].drop("qpu-s0").any()
    prior = report.split("## Prior diagnostics")[1].split("##")[0]
    prod = [ln for ln in prior.splitlines() if ln.startswith("| product")]
    assert len(prod) == 1 and "| 0.15 | 3.75 | 0 |" in prod[0]   # 5 updates: TV 0.15, entropy 4 - 0.25, TC 0
    assert math.isclose(trials.loc["ferrite-qcbm-n4-t64-s0", "prior_total_correlation_bits_final"], 0.1)


def test_runs_missing_an_arm_report_only_the_comparisons_they_can(tmp_path):
    only_b = tmp_path / "b"
    make_run(only_b, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=3, models=("bernoulli",))
    imp, _, _ = improvement_table(collect(only_b, progress=False), resamples=50)
    assert imp[["comparison", "pair_status"]].values.tolist() == [["qcbm_vs_bernoulli", "no_qcbm"]]   # as before
    bp = tmp_path / "bp"
    make_run(bp, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=3,
             models=("bernoulli", "product"))
    imp, _, _ = improvement_table(collect(bp, progress=False), resamples=50)
    got = imp[["comparison", "pair_status"]].values.tolist()
    assert got == [["qcbm_vs_bernoulli", "no_qcbm"], ["product_vs_bernoulli", "paired"]]
