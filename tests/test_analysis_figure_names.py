"""Figure files are named from the setting (phase, n, training size, update period, arm), uniquely and safely."""
import re

import pytest

from analysis import run_analysis
from analysis.fakerun import BASE_CONFIG, make_run, write_trial
from analysis.figures import MAX_STEM, figure_stems

SAFE = re.compile(r"[a-z0-9._+-]+")


def _unit(sid, arm="qcbm", phase="ferrite", **cfg):
    return {"setting_id": sid, "phase": phase, "arm": arm, "cfg": {"n": 8, "train_size": 512, "update_every": 10,
                                                                   **cfg}}


def test_three_arm_run_names_figures_by_setting_and_report_links_them(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(8,), train_sizes=(512,), seeds=(0, 1), epochs=6, samples=2,
             models=("bernoulli", "product", "qcbm"), update_every={"ferrite": 2}, diagnostics=True)
    out = run_analysis(run, tmp_path / "out", resamples=100, progress=False, montage_samples=2)["out"]
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["mmd_ferrite_n8_t512_u2_product.png", "mmd_ferrite_n8_t512_u2_qcbm.png", "prior_ferrite.png",
                    "ri_vs_n.png", "samples_ferrite_n8_t512_u2_product.png", "samples_ferrite_n8_t512_u2_qcbm.png"]
    report = (out / "report.md").read_text()
    for name in pngs:
        assert f"(figures/{name})" in report, name
    assert not re.search(r"figures/\w+_[0-9a-f]{12}\.png", report), "a figure is still named by hash"


def test_settings_sharing_phase_n_size_and_period_get_the_field_that_tells_them_apart(tmp_path):
    run = tmp_path / "run"
    make_run(run, phases=("ferrite",), ns=(4,), train_sizes=(64,), seeds=(0, 1), epochs=4,
             variants=[{"qcbm_lr": 0.1}, {"qcbm_lr": 0.05}])
    cfg = dict(BASE_CONFIG, model="bernoulli", seed=0, n=6, epochs=4, trial_id="alone")   # no QCBM partner
    write_trial(run / "alone", cfg, [1.0] * 4)
    out = run_analysis(run, tmp_path / "out", resamples=0, progress=False, montage_samples=0)["out"]
    names = sorted(p.name for p in (out / "figures").glob("mmd_*.png"))
    assert names == ["mmd_ferrite_n4_t64_u30_lr0.05_qcbm.png", "mmd_ferrite_n4_t64_u30_lr0.1_qcbm.png",
                     "mmd_ferrite_n6_t64_bernoulli.png"]   # Bernoulli reads no update period: no u


def test_stems_are_unique_even_ignoring_case_and_filesystem_safe():
    units = [_unit("aaaaaaaaaaaa", qcbm_optimizer="SPSA"), _unit("bbbbbbbbbbbb", qcbm_optimizer="spsa"),
             _unit("cccccccccccc", backend="aer noisy/v2"), _unit("dddddddddddd", backend="aer"),
             _unit("eeeeeeeeeeee", phase="Bainite")]
    stems = figure_stems(units)
    assert len({s.lower() for s in stems.values()}) == len(units)
    assert all(SAFE.fullmatch(s) for s in stems.values()), stems
    assert stems["aaaaaaaaaaaa"] == "ferrite_n8_t512_u10_opt-spsa_be-absent_qcbm_aaaaaaaaaaaa"
    assert stems["cccccccccccc"] == "ferrite_n8_t512_u10_opt-absent_be-aer-noisy-v2_qcbm"
    assert stems["eeeeeeeeeeee"] == "bainite_n8_t512_u10_qcbm"


def test_overlong_stem_is_cut_and_keeps_the_setting_id_and_arm():
    units = [_unit("aaaaaaaaaaaa", connectivity="x" * 300), _unit("bbbbbbbbbbbb", connectivity="y" * 300)]
    stems = figure_stems(units)
    for sid, stem in stems.items():
        assert len(stem) <= MAX_STEM and stem.endswith(f"_{sid}_qcbm") and SAFE.fullmatch(stem)


@pytest.mark.parametrize("value,token", [(10.0, "u10"), (True, "u-true"), ("-3", "u-3"), ("a b", "u-a-b")])
def test_field_values_become_readable_tokens(value, token):
    stems = figure_stems([_unit("aaaaaaaaaaaa", update_every=value)])
    assert stems["aaaaaaaaaaaa"] == f"ferrite_n8_t512_{token}_qcbm"
